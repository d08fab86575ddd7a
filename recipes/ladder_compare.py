"""Several probe ladders side by side (seeds, transfer arms, sweep points): comparison.json, .md and .png.

    python recipes/ladder_compare.py --config recipes/concept_titles/ladder_compare_plain.yaml
    python recipes/ladder_compare.py --ladders seed0=outputs/a/ladder.json seed1=outputs/b/ladder.json --output_dir D

Nothing is re-scored: each row holds its ladder's own numbers (`unicorn_hf.experiments.ladder_compare`).
"""

from __future__ import annotations

from unicorn_hf.experiments.ladder_compare import LadderCompareArguments, make_parser, run_comparison
from unicorn_hf.utils.logging import setup_logging


def main(args: LadderCompareArguments) -> dict:
    setup_logging()
    return run_comparison(args)


if __name__ == "__main__":
    main(*make_parser().parse_args_and_config())
