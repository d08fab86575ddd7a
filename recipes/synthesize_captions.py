"""Stage 1 of Unicorn: expand sparse caption seeds into detailed captions with an instruction LLM (distilabel).

    python recipes/synthesize_captions.py --config recipes/tiny/captions.yaml
    python recipes/synthesize_captions.py --config recipes/unicorn-8b/captions.yaml \
        --push_to_hub --hub_dataset_id <user>/unicorn-captions

Writes a Hub-ready dataset folder (config `captions`: id, seed, seed_source, caption, model_name) to `output_dir`.
An interrupted run (Ctrl-C, a kill) exits non-zero and writes no dataset; running the same command again generates
only the rows no earlier run finished, from distilabel's cache in `output_dir/.distilabel_cache` (`--overwrite`
regenerates everything).
"""

from trl import TrlParser

from unicorn_hf.synthesis.captions import synthesize_captions
from unicorn_hf.synthesis.config import CaptionArguments, LLMArguments, OutputArguments, SeedArguments
from unicorn_hf.utils.logging import setup_logging


def make_parser() -> TrlParser:
    return TrlParser((SeedArguments, CaptionArguments, LLMArguments, OutputArguments))


def main(seed_args: SeedArguments, caption_args: CaptionArguments, llm_args: LLMArguments, out_args: OutputArguments):
    setup_logging()
    return synthesize_captions(seed_args, caption_args, llm_args, out_args)


if __name__ == "__main__":
    main(*make_parser().parse_args_and_config())
