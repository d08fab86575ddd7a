"""Does text-only training see? Train every arm of plan.yaml and question it about held-out real images.

Usage (2 CPU cores; the first seed trains the shared encoder, later seeds reuse it):

    python recipes/experiments/does_it_see/run.py --config recipes/experiments/does_it_see/experiment.yaml --seed 0

`make experiment-does-it-see` runs seeds 0 and 1 and renders the README table from both. Any field of experiment.yaml
can be overridden on the command line (e.g. `--num_eval 50 --output_dir /tmp/exp`); a re-run skips each finished stage.
"""

from __future__ import annotations

from trl import TrlParser

from unicorn_hf.experiments.config import ExperimentArguments
from unicorn_hf.experiments.does_it_see import Experiment
from unicorn_hf.utils.logging import setup_logging


def make_parser() -> TrlParser:
    return TrlParser((ExperimentArguments,))


def main(args: ExperimentArguments) -> dict:
    setup_logging()
    return Experiment(args).run()


if __name__ == "__main__":
    main(*make_parser().parse_args_and_config())
