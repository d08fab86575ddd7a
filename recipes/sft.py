"""Stage 4b: instruction-tune a pretrained Unicorn model on text-only dialogues.

Loads the pretraining checkpoint and trains the projector plus the LLM, in full or through LoRA adapters
(`use_peft: true`; QLoRA with `load_in_4bit: true` where bitsandbytes is installed). Each dialogue is rendered with
the tokenizer's chat template (or `chat_template` from the YAML) and the loss covers the assistant turns only.

Usage (paper scale, 8 GPUs):

    accelerate launch --config_file accelerate_configs/zero3.yaml recipes/sft.py --config recipes/unicorn-8b/sft.yaml

CPU recipe (after recipes/pretrain.py with recipes/tiny/pretrain.yaml):

    accelerate launch --config_file accelerate_configs/cpu.yaml recipes/sft.py --config recipes/tiny/sft.yaml

With LoRA the output folder holds the adapters merged into a self-contained model (`merge_adapters: true`) and the
unmerged adapters under `<output_dir>/adapter`. A re-run resumes from the newest complete `checkpoint-*` in
`output_dir`; one cut short by a kill is skipped with a warning.

With `image_tower_encoder` (the transfer stage's encoder) the saved checkpoint also carries that encoder's frozen image
tower and image processor, shifted by `image_tower_mean`, so that it answers about real images from its folder alone:
`pipeline("image-text-to-text", model=output_dir, trust_remote_code=True)`. The tower is converted before training
(an encoder no transformers class holds fails there, naming the ways out) and attached on the main process after the
trainer's save, by reloading and saving again.
"""

from __future__ import annotations

import logging
import os

from peft import PeftModel
from trl import SFTTrainer, TrlParser

from unicorn_hf.modeling.processing_unicorn import accept_structured_content
from unicorn_hf.training.config import UnicornModelConfig, UnicornScriptArguments, UnicornTrainingConfig
from unicorn_hf.training.image_tower import carry_image_tower, prepare_image_tower
from unicorn_hf.training.metadata import build_metadata, make_config_portable, read_previous
from unicorn_hf.training.run import publish_stage, read_chat_template, start_stage, tokenize_train_split
from unicorn_hf.training.setup import (
    build_trainer,
    copy_modality_statistics,
    count_parameters,
    load_stage_checkpoint,
    lora_config,
    set_trainable_parts,
    train,
)


logger = logging.getLogger(__name__)
STAGE = "sft"
ADAPTER_DIR = "adapter"


def main(
    script_args: UnicornScriptArguments, training_args: UnicornTrainingConfig, model_args: UnicornModelConfig
) -> SFTTrainer:
    statistics, resume_from = start_stage(STAGE, script_args, training_args, model_args)

    # Model: the pretraining checkpoint; the statistics of this dataset must come from the same encoder.
    model, processor = load_stage_checkpoint(model_args, training_args)
    copy_modality_statistics(model, statistics)
    set_trainable_parts(model, model_args, STAGE)
    peft_config = lora_config(model_args)
    if chat_template := read_chat_template(training_args):
        # Saved with the processor; structured content ([{"type": "image"}, {"type": "text", ...}]) works too.
        wrapped = accept_structured_content(chat_template, processor.image_token)
        processor.chat_template = processor.tokenizer.chat_template = wrapped

    # Data: rendered dialogues, loss on assistant turns; untrainable rows are dropped and counted.
    prepared = tokenize_train_split(
        STAGE, script_args, training_args, processor, model.config.embed_dim, chat_template=chat_template
    )
    trainer = build_trainer(model, processor, training_args, prepared.dataset, peft_config=peft_config)
    if (
        peft_config is not None
        and model_args.merge_adapters
        and (trainer.is_deepspeed_enabled or trainer.is_fsdp_enabled)
    ):
        # Refused before training, not after it: the merge needs the whole model on one process.
        raise ValueError(
            "merge_adapters under DeepSpeed/FSDP is not supported here: set merge_adapters: false (the adapters are "
            f"saved in {training_args.output_dir}/{ADAPTER_DIR}) and merge them offline with "
            "PeftModel.from_pretrained(...).merge_and_unload()."
        )
    carried = None
    if model_args.image_tower_encoder is not None and trainer.accelerator.is_main_process:
        # Before training: an encoder that cannot be carried is an error now, not after the run.
        carried = prepare_image_tower(
            model_args.image_tower_encoder,
            model_args.image_tower_mean,
            encoder_id=model.config.encoder_id,
            has_image_mean=model.config.has_image_mean,
            method=model.config.modality_transfer["method"],
        )
    parameters = count_parameters(trainer.model)
    logger.info("Trainable parameters: %d of %d", parameters["trainable"], parameters["total"])
    train_result = train(trainer, resume_from)

    # Save: a self-contained checkpoint in output_dir; with LoRA also the unmerged adapters.
    output_dir = training_args.output_dir
    make_config_portable(model.config, output_dir)
    merged_lora = isinstance(trainer.model, PeftModel) and bool(model_args.merge_adapters)
    if merged_lora:
        trainer.save_model(os.path.join(output_dir, ADAPTER_DIR))
        merged = trainer.accelerator.unwrap_model(trainer.model).merge_and_unload()
        if trainer.accelerator.is_main_process:
            merged.save_pretrained(output_dir)
            processor.save_pretrained(output_dir)
    else:
        trainer.save_model(output_dir)
    trainer.accelerator.wait_for_everyone()
    image_tower = carry_image_tower(output_dir, carried) if carried is not None else None

    previous = read_previous(model_args.model_name_or_path) or {}
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
        base_model=previous.get("base_model") or {"name_or_path": model.config.text_config.name_or_path},
        parameters=parameters,
    )
    record["initialized_from"] = {"name_or_path": model_args.model_name_or_path, "revision": model_args.model_revision}
    record["chat_template_source"] = "yaml" if chat_template else "tokenizer"
    record["image_tower"] = image_tower
    publish_stage(trainer, record, training_args)
    return trainer


def make_parser() -> TrlParser:
    return TrlParser((UnicornScriptArguments, UnicornTrainingConfig, UnicornModelConfig))


if __name__ == "__main__":
    main(*make_parser().parse_args_and_config())
