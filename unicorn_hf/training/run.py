"""What both training recipes do around their trainer, in order: start the stage, tokenize the train split, publish.

`recipes/pretrain.py` and `recipes/sft.py` differ in the model they start from (a fresh Unicorn model around the
base LLM, or the pretraining checkpoint) and in what they save (the SFT stage's LoRA merge and carried image tower);
everything else is here, so the two scripts read top to bottom like alignment-handbook's `scripts/sft.py`:

    statistics, resume_from = start_stage("pretrain", script_args, training_args, model_args)
    model, processor = build_pretrain_model(model_args, training_args, statistics)
    prepared = tokenize_train_split("pretrain", script_args, training_args, processor, model.config.embed_dim)
    trainer = build_trainer(model, processor, training_args, prepared.dataset)
    ...
    publish_stage(trainer, record, training_args)
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from transformers import set_seed
from trl import SFTTrainer

from unicorn_hf.cards import write_training_card
from unicorn_hf.training.config import UnicornModelConfig, UnicornScriptArguments, UnicornTrainingConfig
from unicorn_hf.training.data import PreparedData, prepare_dataset
from unicorn_hf.training.metadata import write_metadata
from unicorn_hf.training.resume import checkpoint_to_resume
from unicorn_hf.training.setup import load_train_split, statistics_folder, statistics_source
from unicorn_hf.transfer.statistics import TransferStatistics
from unicorn_hf.utils.hub import push_folder
from unicorn_hf.utils.logging import setup_logging
from unicorn_hf.utils.preflight import check_reference, check_unicorn_config
from unicorn_hf.utils.processes import die_with_launcher


logger = logging.getLogger(__name__)

STAGE_DATA = {"pretrain": "captions", "sft": "dialogues"}  # what a stage tokenizes, for its progress line
# Settings that only the other stage reads: set for this one, they would be ignored without a word.
OTHER_STAGE_SETTINGS = {
    "pretrain": ("use_peft", "image_tower_encoder", "image_tower_mean"),
    "sft": ("caption_prompt",),
}


def check_stage_settings(
    stage: str,
    script_args: UnicornScriptArguments,
    training_args: UnicornTrainingConfig,
    model_args: UnicornModelConfig,
) -> None:
    """Raise `ValueError` naming every setting of `OTHER_STAGE_SETTINGS[stage]` that is set (the YAML or the command
    line gave a value this stage would ignore), and a chat template given to pretraining without `caption_prompt`
    (the plain `<image> caption` rows use no template)."""
    values = {**vars(script_args), **vars(model_args)}
    foreign = [name for name in OTHER_STAGE_SETTINGS[stage] if values.get(name) not in (None, False)]
    if foreign:
        other = "SFT" if stage == "pretrain" else "pretraining"
        raise ValueError(f"{', '.join(foreign)}: set for {stage}, but only the {other} stage reads them; remove them.")
    templates = [name for name in ("chat_template", "chat_template_path") if getattr(training_args, name)]
    if stage == "pretrain" and templates and script_args.caption_prompt is None:
        raise ValueError(
            f"{', '.join(templates)}: pretraining reads a chat template only with `caption_prompt` (the chat format); "
            "the plain `<image> caption` rows use none. Set caption_prompt, or remove them."
        )


def read_chat_template(training_args: UnicornTrainingConfig) -> str | None:
    """The YAML's chat template: inline `chat_template`, or TRL's `chat_template_path` when it is a Jinja file; None
    (the tokenizer's own). Raises `ValueError` when both are set or the path is not a .jinja/.j2 file."""
    if training_args.chat_template and training_args.chat_template_path:
        raise ValueError("Set chat_template (inline) or chat_template_path (a .jinja file), not both.")
    path = training_args.chat_template_path
    if path is None:
        return training_args.chat_template
    if not (os.path.isfile(path) and path.endswith((".jinja", ".j2"))):
        # TRL would clone another tokenizer's template and add its tokens, which would shift the <image> id.
        raise ValueError(f"chat_template_path={path!r}: Unicorn takes a .jinja file here (or inline chat_template).")
    return Path(path).read_text()


def start_stage(
    stage: str,
    script_args: UnicornScriptArguments,
    training_args: UnicornTrainingConfig,
    model_args: UnicornModelConfig,
) -> tuple[TransferStatistics, str | None]:
    """Logging, the death signal of `accelerate launch`, the seed, then every path or Hub id the run reads (a typo is
    named before anything loads, not blamed on the network; an SFT start checkpoint's config is checked whole).

    Returns the transfer statistics of the training data and the checkpoint to resume from (None: a fresh run).
    Raises `ReferenceNotFoundError` / `ValueError` naming the field (`check_stage_settings` included), and what
    `TransferStatistics.load` raises."""
    check_stage_settings(stage, script_args, training_args, model_args)
    setup_logging(logging.INFO if training_args.should_log else logging.WARNING)
    die_with_launcher()  # killed with `accelerate launch`, not left training on its own
    set_seed(training_args.seed)
    check_reference(model_args.model_name_or_path, field="model_name_or_path", kind="model",
                    revision=model_args.model_revision)  # fmt: skip
    if stage == "sft":  # it starts from a Unicorn checkpoint, whose config must be whole
        check_unicorn_config(model_args.model_name_or_path, revision=model_args.model_revision)
    check_reference(script_args.dataset_name, field="dataset_name", kind="dataset")
    check_reference(script_args.statistics_path, field="statistics_path", kind="dataset")
    resume_from = checkpoint_to_resume(training_args)
    statistics = TransferStatistics.load(statistics_folder(script_args), source=statistics_source(script_args))
    return statistics, resume_from


def tokenize_train_split(
    stage: str,
    script_args: UnicornScriptArguments,
    training_args: UnicornTrainingConfig,
    processor,
    embed_dim: int,
    chat_template: str | None = None,
) -> PreparedData:
    """The train split of `dataset_name [dataset_config]`, validated and tokenized for `stage`
    (`unicorn_hf.training.data.prepare_dataset`: untrainable rows are dropped and counted). The main process goes
    first; the others reuse its cache."""
    raw = load_train_split(script_args)
    with training_args.main_process_first(desc=f"tokenizing the {STAGE_DATA[stage]}"):
        return prepare_dataset(
            raw,
            stage=stage,
            processor=processor,
            embed_dim=embed_dim,
            max_length=training_args.max_length,
            chat_template=chat_template,
            caption_prompt=script_args.caption_prompt,  # None for SFT (`check_stage_settings`)
            num_proc=training_args.dataset_num_proc,
            where=f"{script_args.dataset_name} [{script_args.dataset_config}]",
        )


def publish_stage(trainer: SFTTrainer, record: dict, training_args: UnicornTrainingConfig) -> None:
    """After the checkpoint is saved in `output_dir`: its record (`unicorn_training.json`) and model card, then, with
    `push_to_hub`, the folder as saved (`trainer.push_to_hub` would save the trainer's model again over a merged or
    tower-carrying one, and write TRL's text-generation card over the project's)."""
    output_dir = training_args.output_dir
    if trainer.accelerator.is_main_process:
        write_metadata(record, output_dir)
        write_training_card(output_dir, training_args.hub_model_id)
    trainer.accelerator.wait_for_everyone()
    if training_args.push_to_hub and trainer.accelerator.is_main_process:
        push_folder(output_dir, training_args.hub_model_id or Path(output_dir).name, repo_type="model")
