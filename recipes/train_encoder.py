"""Train the paired image-text encoder (LiT: locked packaged towers + trained projections) and save it as an
open_clip `local-dir:` folder with a model card and held-out retrieval / modality-gap numbers.

    python recipes/train_encoder.py --config recipes/tiny/encoder.yaml

Any field can be overridden on the command line, e.g. `--max_pairs_per_source 200 --output_dir /tmp/encoder`.
"""

from __future__ import annotations

from trl import TrlParser

from unicorn_hf.lit.config import EncoderDataArguments, EncoderModelArguments, EncoderTrainingArguments
from unicorn_hf.lit.recipe import encoder_parser
from unicorn_hf.lit.train import train_encoder
from unicorn_hf.utils.logging import setup_logging


def make_parser() -> TrlParser:
    return encoder_parser()


def main(
    model_args: EncoderModelArguments, data_args: EncoderDataArguments, training_args: EncoderTrainingArguments
) -> None:
    setup_logging()
    train_encoder(model_args, data_args, training_args)


if __name__ == "__main__":
    main(*make_parser().parse_args_and_config())
