"""Does the checkpoint look at the image? Held-out real images, sighted against blind, with a paired interval.

Usage (after the tiny recipe's SFT; `make quickstart` runs it as the `sees` stage):

    python recipes/sees.py --config recipes/tiny/sees.yaml

Writes `<output_dir>/results.json`; `recipes/evaluate_vlm.py` copies it into the model card when `sees_results`
names it.
"""

from __future__ import annotations

from trl import TrlParser

from unicorn_hf.evaluation.sees import SeesArguments, run_sees
from unicorn_hf.utils.logging import setup_logging
from unicorn_hf.utils.preflight import check_reference, check_unicorn_config


def make_parser() -> TrlParser:
    return TrlParser((SeesArguments,))


def main(args: SeesArguments) -> dict:
    setup_logging()
    check_reference(args.model_name_or_path, field="model_name_or_path", kind="model")
    check_unicorn_config(args.model_name_or_path)
    check_reference(args.text_path, field="text_path", kind="dataset")
    return run_sees(args)


if __name__ == "__main__":
    main(*make_parser().parse_args_and_config())
