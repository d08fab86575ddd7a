"""`unicorn_training.json`: everything a model card needs about one training stage, written beside the weights.

The evaluation stage renders the full model card from it (base LLM, encoder, data, hyper-parameters with the global
batch spelled out, hardware, versions, the exact command, final loss, dropped rows); an SFT checkpoint also carries
the pretraining stage's record under `previous_stages`.
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
import os
import platform
import sys
from dataclasses import asdict
from pathlib import Path

import torch

from unicorn_hf.utils.paths import portable_command, portable_path, portable_record


logger = logging.getLogger(__name__)

METADATA_FILE = "unicorn_training.json"
_PACKAGES = ("unicorn-hf", "torch", "transformers", "trl", "peft", "accelerate", "datasets", "deepspeed")
# Training arguments a card reports; the full set is in training_args.bin.
_HPARAMS = (
    "learning_rate",
    "num_train_epochs",
    "max_steps",
    "lr_scheduler_type",
    "warmup_steps",
    "weight_decay",
    "optim",
    "adam_beta1",
    "adam_beta2",
    "max_grad_norm",
    "bf16",
    "fp16",
    "max_length",
    "gradient_checkpointing",
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "seed",
)
_LORA = (
    "lora_r",
    "lora_alpha",
    "lora_dropout",
    "lora_target_modules",
    "lora_modules_to_save",
    "use_rslora",
    "use_dora",
)


def package_versions(names: tuple[str, ...] = _PACKAGES) -> dict[str, str | None]:
    """Installed version of each distribution in `names` (None where absent), for records and cards."""
    versions = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def hardware(num_processes: int) -> dict:
    info = {"num_processes": num_processes, "platform": platform.platform(), "cpu_count": os.cpu_count()}
    if torch.cuda.is_available():
        info["accelerator"] = torch.cuda.get_device_name(0)
        info["accelerators_per_node"] = torch.cuda.device_count()
    else:
        info["accelerator"] = "cpu"
    info["num_nodes"] = int(os.environ.get("NUM_NODES", os.environ.get("SLURM_NNODES", 1)))
    return info


def command_line(output_dir: str | Path) -> str:
    """The command as this process saw it, its paths as a record stores them (`unicorn_hf.utils.paths`). Under
    `accelerate launch` every process runs the script itself, so the launcher's own flags are not visible here;
    `hardware.num_processes` records the resulting world size."""
    launcher = "accelerate launch" if "ACCELERATE_MIXED_PRECISION" in os.environ else "python"
    return f"{launcher} {portable_command(sys.argv, output_dir)}"


def read_previous(model_path: str | None) -> dict | None:
    """The metadata of the checkpoint this stage started from, when it is a local Unicorn stage output."""
    if model_path and (Path(model_path) / METADATA_FILE).is_file():
        return json.loads((Path(model_path) / METADATA_FILE).read_text())
    return None


def pretraining_caption_prompt(record: dict | None) -> str | None:
    """The user turn a checkpoint's projector was pretrained to answer with the caption (`caption_prompt`), read
    from its training record or, for a later stage, from the pretraining stage in its history; None for the plain
    format or a checkpoint without a record."""
    if not record:
        return None
    stages = [*(record.get("previous_stages") or []), record]
    pretraining = [stage for stage in stages if stage.get("stage") == "pretrain"]
    return pretraining[-1]["dataset"].get("caption_prompt") if pretraining else None


def build_metadata(
    *,
    stage: str,
    trainer,
    script_args,
    training_args,
    model_args,
    model_config,
    statistics,
    prepared,
    train_result,
    resumed_from: str | None,
    base_model: dict,
    parameters: dict,
) -> dict:
    """Collect the record of one stage (call on every process; write on the main one)."""
    world = trainer.accelerator.num_processes
    per_device = training_args.per_device_train_batch_size
    accumulation = training_args.gradient_accumulation_steps
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    previous = read_previous(model_args.model_name_or_path) if stage == "sft" else None
    return {
        "stage": stage,
        "base_model": base_model,
        "encoder": {
            "encoder_id": model_config.encoder_id,
            "embed_dim": model_config.embed_dim,
            **({"spec": model_config.encoder} if model_config.encoder else {}),
        },
        "model": {
            "projector_type": model_config.projector_type,
            "num_image_tokens": model_config.num_image_tokens,
            "image_token_id": model_config.image_token_id,
            "parameters": parameters,
            "trained": {
                "projector": model_args.train_projector,
                "language_model": ("lora" if model_args.use_peft else "full")
                if model_args.train_language_model
                else None,
            },
            **({"lora": {name: getattr(model_args, name) for name in _LORA}} if model_args.use_peft else {}),
        },
        "dataset": {
            "name": script_args.dataset_name,
            "config": script_args.dataset_config,
            "split": script_args.dataset_train_split,
            "rows_in": prepared.drops.rows_in,
            "rows_trained": len(prepared.dataset),
            "max_train_samples": script_args.max_train_samples,
            **({"caption_prompt": script_args.caption_prompt} if stage == "pretrain" else {}),
        },
        "drops": prepared.to_dict(),
        "modality_statistics": statistics.to_dict(),
        "hyperparameters": {
            **{name: getattr(training_args, name) for name in _HPARAMS},
            "num_processes": world,
            "global_batch_size": per_device * accumulation * world,
            "global_batch_formula": f"{per_device} per device x {accumulation} accumulation x {world} processes",
        },
        "results": {
            "global_step": trainer.state.global_step,
            "train_loss": train_result.training_loss,  # mean over the run
            "final_logged_loss": losses[-1] if losses else None,
            "train_runtime_s": train_result.metrics.get("train_runtime"),
            "resumed_from_checkpoint": resumed_from,
        },
        "hardware": hardware(world),
        "versions": package_versions(),
        "command": command_line(training_args.output_dir),
        "config": {
            "script_args": asdict(script_args),
            "model_args": asdict(model_args),
        },
        "previous_stages": (
            [*(previous.get("previous_stages") or []), _without_history(previous)] if previous else []
        ),
    }


def _without_history(record: dict) -> dict:
    return {key: value for key, value in record.items() if key != "previous_stages"}


def make_config_portable(config, output_dir: str | Path) -> None:
    """Before a checkpoint is saved: the names its `config.json` keeps of where the model came from (the text
    config's `_name_or_path`) as `unicorn_hf.utils.paths.portable_path` writes them, never a path of this machine."""
    for part in (config, getattr(config, "text_config", None)):
        if part is not None and part.name_or_path:
            part.name_or_path = portable_path(part.name_or_path, output_dir)


def write_metadata(record: dict, output_dir: str | Path) -> Path:
    """Write `unicorn_training.json`; every absolute path in it is written as `unicorn_hf.utils.paths.portable_path`
    says, so the record holds no path of the machine it ran on."""
    path = Path(output_dir) / METADATA_FILE
    record = portable_record(json.loads(json.dumps(record, default=str)), output_dir)
    path.write_text(json.dumps(record, indent=2) + "\n")
    logger.info("Wrote %s", path)
    return path
