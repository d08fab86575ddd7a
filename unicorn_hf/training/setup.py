"""Trainer set-up of the two training stages: which model each starts from, what is frozen, LoRA, and the trainer.

- Pretraining builds a fresh Unicorn model from the base LLM and trains the projector only (the LLM is frozen).
- SFT loads the pretraining checkpoint and trains the projector plus the LLM: all of it, or LoRA adapters (PEFT).
"""

from __future__ import annotations

import json
import logging
import os

import torch
from huggingface_hub import snapshot_download
from trl import SFTTrainer, get_peft_config, get_quantization_config

from unicorn_hf.modeling import UnicornForConditionalGeneration, UnicornProcessor
from unicorn_hf.training.builder import build_from_text_model, set_modality_transfer
from unicorn_hf.training.collator import UnicornDataCollator
from unicorn_hf.training.config import UnicornModelConfig, UnicornTrainingConfig, require
from unicorn_hf.transfer.statistics import STATS_FILES, TransferStatistics
from unicorn_hf.utils.hub import load_dataset_folder


logger = logging.getLogger(__name__)


def torch_dtype(name: str | None) -> torch.dtype | str | None:
    """ModelConfig's `dtype` string ("float32", "bfloat16", "auto", None) -> what `from_pretrained` takes."""
    if name in (None, "auto"):
        return name
    return getattr(torch, name)


# ---- models ------------------------------------------------------------------------------------------------------
def build_pretrain_model(
    model_args: UnicornModelConfig, training_args: UnicornTrainingConfig, stats: TransferStatistics
) -> tuple[UnicornForConditionalGeneration, UnicornProcessor]:
    """A fresh Unicorn model around the base LLM, sized by the transfer statistics (the YAML may only agree)."""
    require(model_args, "model_name_or_path", "projector_type", "num_image_tokens", stage="pretrain")
    stats.check_matches(model_args.embed_dim, model_args.encoder_id, what="The pretrain config")
    if model_args.load_in_4bit or model_args.load_in_8bit:
        raise ValueError("Pretraining trains the projector in full precision; quantization is for LoRA SFT only.")
    return build_from_text_model(
        model_args.model_name_or_path,
        embed_dim=stats.dim,
        projector_type=model_args.projector_type,
        num_image_tokens=model_args.num_image_tokens,
        encoder_id=stats.encoder_id,
        encoder=stats.encoder,
        modality_transfer=stats.settings.to_dict(),
        gguf_file=model_args.gguf_file,
        revision=model_args.model_revision,
        dtype=torch_dtype(model_args.dtype),
        attn_implementation=model_args.attn_implementation,
        trust_remote_code=training_args.trust_remote_code,
    )


def load_stage_checkpoint(
    model_args: UnicornModelConfig, training_args: UnicornTrainingConfig
) -> tuple[UnicornForConditionalGeneration, UnicornProcessor]:
    """Load a Unicorn checkpoint (the pretraining output) for SFT, optionally quantized for QLoRA."""
    require(model_args, "model_name_or_path", stage="sft")
    quantization_config = get_quantization_config(model_args)
    if quantization_config is not None:
        try:
            import bitsandbytes  # noqa: F401
        except ImportError as error:
            raise ImportError(
                "load_in_4bit / load_in_8bit (QLoRA) need bitsandbytes: pip install bitsandbytes"
            ) from error
        if not model_args.use_peft:
            raise ValueError("A quantized LLM cannot be fully fine-tuned; set use_peft: true (QLoRA).")
        # The projector is small and trains in full: keep it (and the LM head) out of the quantization.
        quantization_config.llm_int8_skip_modules = ["projector", "lm_head"]
    model = UnicornForConditionalGeneration.from_pretrained(
        model_args.model_name_or_path,
        revision=model_args.model_revision,
        dtype=torch_dtype(model_args.dtype),
        attn_implementation=model_args.attn_implementation,
        quantization_config=quantization_config,
        trust_remote_code=training_args.trust_remote_code,
    )
    processor = UnicornProcessor.from_pretrained(
        model_args.model_name_or_path,
        revision=model_args.model_revision,
        trust_remote_code=training_args.trust_remote_code,
    )
    config = model.config
    for name in ("projector_type", "num_image_tokens", "embed_dim", "encoder_id"):
        wanted = getattr(model_args, name)
        if wanted is not None and wanted != getattr(config, name):
            raise ValueError(
                f"The SFT config says {name}={wanted!r} but the checkpoint {model_args.model_name_or_path} was "
                f"pretrained with {name}={getattr(config, name)!r}; these are fixed at pretraining."
            )
    if processor.num_image_tokens != config.num_image_tokens:
        raise ValueError(
            f"{model_args.model_name_or_path}: the processor expands <image> to {processor.num_image_tokens} tokens "
            f"but the model expects num_image_tokens={config.num_image_tokens}."
        )
    return model, processor


def copy_modality_statistics(model: UnicornForConditionalGeneration, stats: TransferStatistics) -> None:
    """Check that the data was embedded by the model's encoder, then store its statistics in the model."""
    stats.check_matches(model.config.embed_dim, model.config.encoder_id, what=f"The model ({model.name_or_path})")
    current = model.modality_statistics.text_mean.float().cpu()
    if bool(current.any()) and not torch.allclose(current, stats.text_mean, atol=1e-4):
        logger.warning(
            "The dataset's text_mean differs from the one in %s (max |diff| %.3g): the model now stores the dataset's "
            "(its image_embeds were made with it).",
            model.name_or_path,
            float((current - stats.text_mean).abs().max()),
        )
    previous = model.config.modality_transfer
    if bool(current.any()) and previous != stats.settings.to_dict():
        logger.warning("The modality transfer of %s was %s; the dataset's is %s and replaces it.", model.name_or_path,
                       previous, stats.settings.to_dict())  # fmt: skip
    if model.config.has_image_mean and stats.image_mean is None:
        logger.info("The checkpoint's image_mean is kept: the dataset's statistics carry none.")
    set_modality_transfer(model, **stats.model_kwargs())


# ---- what trains -------------------------------------------------------------------------------------------------
def set_trainable_parts(model: UnicornForConditionalGeneration, model_args: UnicornModelConfig, stage: str) -> None:
    """Freeze everything, then unfreeze the parts the YAML names. With LoRA, PEFT decides the LLM's side."""
    require(model_args, "train_projector", "train_language_model", stage=stage)
    if not (model_args.train_projector or model_args.train_language_model):
        raise ValueError(f"{stage}: train_projector and train_language_model are both false; nothing would train.")
    if model_args.use_peft and not model_args.train_language_model:
        raise ValueError(f"{stage}: use_peft adds LoRA adapters to the LLM, so it needs train_language_model: true.")
    model.requires_grad_(False)
    if model_args.train_projector:
        model.projector.requires_grad_(True)
    if model_args.train_language_model and not model_args.use_peft:
        model.language_model.requires_grad_(True)  # the backbone
        model.lm_head.requires_grad_(True)  # the same tensor as the input embeddings where they are tied


def lora_config(model_args: UnicornModelConfig):
    """TRL's LoRA config for the LLM, plus the projector as a fully trained module when it trains."""
    peft_config = get_peft_config(model_args)
    if peft_config is None:
        return None
    if model_args.lora_target_modules is None:
        raise ValueError(
            "use_peft needs lora_target_modules naming the LLM's linear layers (e.g. q_proj, v_proj); "
            "'all-linear' would also put adapters on the projector, which trains in full instead."
        )
    if model_args.train_projector:
        modules = list(peft_config.modules_to_save or [])
        if "projector" not in modules:
            peft_config.modules_to_save = [*modules, "projector"]
    return peft_config


def count_parameters(model: torch.nn.Module) -> dict[str, int]:
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"trainable": trainable, "total": sum(p.numel() for p in model.parameters())}


# ---- run plumbing shared by the two recipes -----------------------------------------------------------------------
def statistics_folder(script_args) -> str:
    """Where the transfer statistics are: `statistics_path`, else the dataset folder, else the Hub dataset repo."""
    if script_args.statistics_path:
        return script_args.statistics_path
    if os.path.isdir(script_args.dataset_name):
        return script_args.dataset_name

    return snapshot_download(script_args.dataset_name, repo_type="dataset", allow_patterns=list(STATS_FILES))


def statistics_source(script_args) -> str:
    """How records name the statistics: as the YAML does (a folder as given or a Hub dataset id), never the cache
    path `statistics_folder` may resolve to on this machine."""
    return script_args.statistics_path or script_args.dataset_name


def load_train_split(script_args):
    """The stage-3 config named in the YAML (a local folder or a Hub dataset), optionally cut to `max_train_samples`
    rows. A local folder is read from its parquet shards by path (`hub.load_dataset_folder`)."""
    require(script_args, "dataset_name", "dataset_config", stage="training")
    dataset = load_dataset_folder(
        script_args.dataset_name, script_args.dataset_config, split=script_args.dataset_train_split
    )
    if script_args.max_train_samples is not None:
        dataset = dataset.select(range(min(script_args.max_train_samples, len(dataset))))
    return dataset


def build_trainer(
    model: UnicornForConditionalGeneration,
    processor: UnicornProcessor,
    training_args: UnicornTrainingConfig,
    train_dataset,
    peft_config=None,
) -> SFTTrainer:
    """The trainer both stages use: TRL's stock `SFTTrainer` (its loss, metrics and fused LM head) with Unicorn's
    collator (`<image>` expansion, padding, labels with the image positions masked, stacked embeddings) on an
    already tokenized dataset."""
    collator = UnicornDataCollator(
        pad_token_id=processor.tokenizer.pad_token_id,
        image_token_id=processor.image_token_id,
        num_image_tokens=processor.num_image_tokens,
        embeds_dtype=model.dtype,
        pad_to_multiple_of=training_args.pad_to_multiple_of,
    )
    return SFTTrainer(
        model=model,
        args=training_args,
        data_collator=collator,
        train_dataset=train_dataset,
        processing_class=processor,
        peft_config=peft_config,
    )


def tokens_seen_before(checkpoint: str | None) -> int:
    """The `num_tokens` last logged in `checkpoint`'s trainer state (0 without one): where a resumed run goes on.

    TRL's `SFTTrainer` counts `num_tokens` in an attribute that a resumed run starts at 0; the count it logged is
    in the checkpoint's `log_history`.
    """
    path = os.path.join(checkpoint, "trainer_state.json") if checkpoint else None
    if path is None or not os.path.isfile(path):
        return 0
    with open(path) as handle:
        history = json.load(handle)["log_history"]
    logged = [entry["num_tokens"] for entry in history if "num_tokens" in entry]
    return int(logged[-1]) if logged else 0


def train(trainer: SFTTrainer, resume_from: str | None):
    """Run (or resume) training; log and save the metrics and the trainer state. Returns the `TrainOutput`."""
    trainer._total_train_tokens = tokens_seen_before(resume_from)  # TRL's counter, restarted at 0 otherwise
    train_result = trainer.train(resume_from_checkpoint=resume_from)
    trainer.log_metrics("train", train_result.metrics)
    trainer.save_metrics("train", train_result.metrics)
    trainer.save_state()
    return train_result
