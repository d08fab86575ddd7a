"""Arguments of the transfer stage (`recipes/transfer.py`). Hyper-parameters have no defaults here: they live in
`recipes/<recipe>/transfer.yaml`; `None` switches an option off."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from unicorn_hf.data_contract import CAPTIONS_CONFIG, INSTRUCTIONS_CONFIG
from unicorn_hf.modeling.modality_transfer import NEEDS_IMAGE_MEAN, TransferSettings


CAPTIONS_MEMORY = "captions"  # `memory_source` naming this stage's own captions


@dataclass
class EncoderArguments:
    """Which paired encoder embeds the captions (see `unicorn_hf.encoders.load_encoder`)."""

    encoder: str = field(
        metadata={
            "help": "open_clip model name (`ViT-L-14`, `unicorn-tiny-clip`), `local-dir:/path` (open_clip folder), "
            "`hf:<id-or-path>` (transformers CLIP/SigLIP) or `llm2clip:<id-or-path>` (the paper's encoder)."
        }
    )
    pretrained: str | None = field(
        metadata={"help": "open_clip pretrained tag or checkpoint file; null = random init (mechanics only)."}
    )
    encoder_device: str = field(metadata={"help": "torch device of the encoder: cpu, cuda, cuda:1, ..."})
    encoder_dtype: str = field(metadata={"help": "float32, float16 or bfloat16."})
    encoder_batch_size: int = field(metadata={"help": "Captions (or images) per forward pass."})
    init_seed: int | None = field(
        default=None, metadata={"help": "Seed of a random-init encoder (required when it has no weights)."}
    )
    llm2clip_text_model: str | None = field(
        default=None, metadata={"help": "LLM2CLIP only: the LLM2Vec caption encoder (hub id or path)."}
    )
    llm2clip_image_processor: str | None = field(
        default=None, metadata={"help": "LLM2CLIP only: the CLIP image processor (hub id or path)."}
    )
    llm2clip_max_length: int | None = field(default=None, metadata={"help": "LLM2CLIP only: caption tokens read."})

    def backend_kwargs(self) -> dict:
        if not self.encoder.startswith("llm2clip:"):
            return {}
        missing = [name for name in ("llm2clip_text_model", "llm2clip_image_processor", "llm2clip_max_length")
                   if getattr(self, name) is None]  # fmt: skip
        if missing:
            raise ValueError(f"encoder {self.encoder!r} needs {missing}")
        return {
            "text_model": self.llm2clip_text_model,
            "image_processor": self.llm2clip_image_processor,
            "max_length": self.llm2clip_max_length,
        }


@dataclass
class TransferArguments:
    """Data in and out, the transfer rule, streaming and diagnostics."""

    captions_path: str = field(metadata={"help": "Stage-1 output folder or Hub id (config `captions`)."})
    output_dir: str = field(metadata={"help": "Folder written: configs `captions` (+ `instructions`), card, stats."})
    shard_size: int = field(metadata={"help": "Rows per output parquet shard; the unit of resumption and memory."})
    method: str = field(
        metadata={
            "help": "Modality transfer method: none | mean_shift (paper) | capdec | c3 | realign | memory_projection "
            "(formulas and sources: unicorn_hf.modeling.modality_transfer)."
        }
    )
    instructions_path: str | None = field(
        default=None, metadata={"help": "Stage-2 output folder or Hub id (config `instructions`); null = none."}
    )
    captions_config: str = field(default=CAPTIONS_CONFIG, metadata={"help": "Config name of the captions dataset."})
    instructions_config: str = field(
        default=INSTRUCTIONS_CONFIG, metadata={"help": "Config name of the instructions."}
    )
    image_mean_source: str | None = field(
        default=None,
        metadata={
            "help": "Unlabeled images for `image_mean`: an image folder, a dataset folder / Hub id (with "
            "`image_mean_column`), or a packaged set: `pkg://unscored-photographs` (`unicorn_hf.utils.assets`)."
        },
    )
    image_mean_column: str | None = field(
        default=None, metadata={"help": "Image column when `image_mean_source` is a dataset (not an image folder)."}
    )
    image_mean_max_images: int | None = field(default=None, metadata={"help": "Cap on images read; null = all."})
    renormalize: bool | None = field(
        default=None,
        metadata={"help": "mean_shift only: L2-normalise after the shift (paper text: true; paper code: false)."},
    )
    add_image_mean: bool = field(
        default=False, metadata={"help": "mean_shift only: store u - mu_T + mu_I (the ideal form); images unshifted."}
    )
    noise_std: float | None = field(
        default=None,
        metadata={"help": "capdec / c3: sigma of the Gaussian noise the model adds in every training step."},
    )
    memory_size: int | None = field(
        default=None,
        metadata={"help": "Rows of the text memory carried for memory projection (a seeded subsample); null = none."},
    )
    memory_source: str | None = field(
        default=None,
        metadata={"help": "Texts of the memory: `captions` (this stage's captions) or a text file, one per line."},
    )
    memory_temperature: float | None = field(
        default=None, metadata={"help": "tau of the memory projection softmax (DeCap: 0.01)."}
    )
    project_images_onto_memory: bool = field(
        default=False,
        metadata={
            "help": "Put the memory projection in front of the image side (any method; memory_projection: always)."
        },
    )
    seed: int | None = field(default=None, metadata={"help": "Seed of the memory subsample (required with a memory)."})
    diagnostics: bool = field(
        default=True, metadata={"help": "Modality-gap diagnostics on the packaged paired photographs."}
    )
    overwrite: bool = field(default=False, metadata={"help": "Discard an earlier (finished or partial) output."})

    def __post_init__(self) -> None:
        if self.shard_size <= 0:
            raise ValueError(f"shard_size must be positive, got {self.shard_size}")
        if self.image_mean_column is not None and self.image_mean_source is None:
            raise ValueError("image_mean_column is set but image_mean_source is not")
        if (self.memory_size is None) != (self.memory_source is None):
            raise ValueError("memory_size and memory_source go together: set both (a memory) or neither")
        if self.memory_size is not None and self.memory_size <= 0:
            raise ValueError(
                f"memory_size must be positive, got {self.memory_size}; for no memory leave memory_size and "
                "memory_source unset (null in the YAML) and use a method that needs none"
            )
        if self.memory_size is not None and self.seed is None:
            raise ValueError("memory_size is set but `seed` is not: the memory is a seeded subsample of its texts")
        if self.memory_source not in (None, CAPTIONS_MEMORY) and not Path(self.memory_source).is_file():
            # checked here, before any text is encoded (compute_statistics reads the file later)
            raise ValueError(
                f"memory_source {self.memory_source!r} is neither {CAPTIONS_MEMORY!r} nor an existing text file "
                "(one text per line)"
            )
        settings = self.settings(self.memory_size or 0)  # raises, naming the field, before any heavy work
        if (settings.method in NEEDS_IMAGE_MEAN or self.add_image_mean) and self.image_mean_source is None:
            raise ValueError(
                f"method {self.method!r} (add_image_mean={self.add_image_mean}) needs `image_mean_source`: unlabeled "
                "images that no evaluation scores on (e.g. pkg://unscored-photographs)"
            )

    def settings(self, memory_size: int) -> TransferSettings:
        """The rule's settings, with the memory's actual size (a memory source may hold fewer texts than asked)."""
        return TransferSettings(
            method=self.method,
            renormalize=self.renormalize,
            add_image_mean=self.add_image_mean,
            noise_std=self.noise_std,
            memory_size=memory_size,
            memory_temperature=self.memory_temperature,
            project_images_onto_memory=self.project_images_onto_memory,
        )
