"""The image-trained oracle's training data: a text arm's rows, each with its pair's real image embedding.

Every caption and dialogue row of a pair-text transfer folder keeps its text and gets, instead of its caption's
transferred text embedding, the real image embedding of its pair shifted by the training images' mean (what
LLaVA-style training sees). Pretrained and probed like any arm, it is the ceiling the text-only arms' transfer
methods are measured against. Rows without a pair (concept-bank labels) are dropped and counted.

Usage (the concept-title recipe's oracle arm; scripts/concept_arms.sh image_oracle runs it, then pretraining and
the ladder):

    python recipes/image_oracle.py --config recipes/concept_titles/image_oracle.yaml
"""

from __future__ import annotations

from trl import TrlParser

from unicorn_hf.experiments.oracle import ImageOracleArguments, run_image_oracle
from unicorn_hf.utils.logging import setup_logging
from unicorn_hf.utils.preflight import check_reference


def make_parser() -> TrlParser:
    return TrlParser((ImageOracleArguments,))


def main(args: ImageOracleArguments) -> None:
    setup_logging()
    for field in ("text_dir", "transfer_dir"):
        check_reference(getattr(args, field), field=field, kind="dataset")
    run_image_oracle(args)


if __name__ == "__main__":
    main(*make_parser().parse_args_and_config())
