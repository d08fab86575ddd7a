"""The probe ladder of a pretraining checkpoint: where is the image lost? Encoder zero-shot (a), held-out concepts'
text through the text side (b), held-out real images through the image side (c), blind controls (d), ranked by
candidate likelihood, raw and calibrated (unicorn_hf/experiments/ladder.py).

Usage (after a pretraining run whose encoder held pairs out):

    python recipes/ladder.py --config recipes/concept_titles/ladder.yaml

Writes `<output_dir>/ladder.json` (per-item credit, intervals, paired differences) and `<output_dir>/ladder.md`.
"""

from __future__ import annotations

from trl import TrlParser

from unicorn_hf.experiments.ladder_run import LadderArguments, run_ladder
from unicorn_hf.logging_utils import setup_logging
from unicorn_hf.preflight import check_reference, check_unicorn_config


def make_parser() -> TrlParser:
    return TrlParser((LadderArguments,))


def main(args: LadderArguments) -> dict:
    setup_logging()
    check_reference(args.model_name_or_path, field="model_name_or_path", kind="model")
    check_unicorn_config(args.model_name_or_path)
    return run_ladder(args)


if __name__ == "__main__":
    main(*make_parser().parse_args_and_config())
