"""Run the whole tiny recipe on packaged real models, stage by stage, and print a summary table.

    python recipes/quickstart.py --config recipes/tiny/quickstart.yaml            # or: make quickstart
    python recipes/quickstart.py --config recipes/tiny/quickstart.yaml --overwrite

Finished stages are skipped on a re-run. Each stage is also runnable alone with the command the log prints.
From an installed wheel (no checkout), in any folder (the packaged recipe files are copied there first):

    python -m unicorn_hf.stages.runner --config recipes/tiny/quickstart.yaml
"""

from __future__ import annotations

from trl import TrlParser

from unicorn_hf.stages.runner import StageRunArguments, run_stages
from unicorn_hf.utils.logging import setup_logging


def make_parser() -> TrlParser:
    return TrlParser((StageRunArguments,))


def main(args: StageRunArguments) -> None:
    setup_logging()
    run_stages(args)


if __name__ == "__main__":
    main(*make_parser().parse_args_and_config())
