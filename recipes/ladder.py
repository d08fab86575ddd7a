"""The probe ladder of a checkpoint: where is the image lost? Encoder zero-shot (a), held-out concepts' text through
the text side (b), held-out real images through the image side (c), blind controls (d), on the same held-out pairs
(unicorn_hf/experiments/ladder.py). A pretraining checkpoint is scored by candidate likelihood, raw and calibrated; an
SFT checkpoint (`questions_path` set) is asked multiple-choice and yes/no questions (with `mc_cloze`, the multiple
choice also in the cloze formulation), and its training dialogues can be answered blind next to chance
(`training_dialogues_path`, `training_probe_rows`).

Usage (after a pretraining or SFT run whose encoder held pairs out):

    python recipes/ladder.py --config recipes/concept_titles/ladder.yaml
    python recipes/ladder.py --config recipes/concept_titles/sft_ladder.yaml
    python recipes/ladder.py --config recipes/concept_titles/arms_ladder.yaml   # one arm of scripts/concept_arms.sh

Writes `<output_dir>/ladder.json` (per-item credit, intervals, paired differences), `ladder.md` and `ladder.png`.
"""

from __future__ import annotations

from trl import TrlParser

from unicorn_hf.experiments.ladder_run import LadderArguments, run_ladder
from unicorn_hf.utils.logging import setup_logging
from unicorn_hf.utils.preflight import check_reference, check_unicorn_config


def make_parser() -> TrlParser:
    return TrlParser((LadderArguments,))


def main(args: LadderArguments) -> dict:
    setup_logging()
    check_reference(args.model_name_or_path, field="model_name_or_path", kind="model")
    check_unicorn_config(args.model_name_or_path)
    return run_ladder(args)


if __name__ == "__main__":
    main(*make_parser().parse_args_and_config())
