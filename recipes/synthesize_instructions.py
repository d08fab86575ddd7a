"""Stage 2 of Unicorn: turn stage-1 captions into MC / QA / reasoning instruction dialogues (distilabel).

    python recipes/synthesize_instructions.py --config recipes/tiny/instructions.yaml
    python recipes/synthesize_instructions.py --config recipes/unicorn-8b/instructions.yaml \
        --push_to_hub --hub_dataset_id <user>/unicorn-instructions

Reads the `captions` config of `captions_dataset`, writes a Hub-ready dataset folder (config `instructions`: id,
task, caption, messages, model_name) to `output_dir`, with drop reasons in the card and unusable replies in
`rejects.jsonl`. An interrupted run exits non-zero and writes no dataset; running the same command again generates
only what no earlier run finished (distilabel's cache in `output_dir/.distilabel_cache`; `--overwrite` starts over).
"""

from trl import TrlParser

from unicorn_hf.synthesis.config import InstructionArguments, LLMArguments, OutputArguments
from unicorn_hf.synthesis.instructions import synthesize_instructions
from unicorn_hf.utils.logging import setup_logging


def make_parser() -> TrlParser:
    return TrlParser((InstructionArguments, LLMArguments, OutputArguments))


def main(instruction_args: InstructionArguments, llm_args: LLMArguments, out_args: OutputArguments):
    setup_logging()
    return synthesize_instructions(instruction_args, llm_args, out_args)


if __name__ == "__main__":
    main(*make_parser().parse_args_and_config())
