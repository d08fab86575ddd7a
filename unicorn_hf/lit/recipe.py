"""The argument parser of `recipes/train_encoder.py`, shared with `build_default_encoder`."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from trl import TrlParser

from unicorn_hf.lit.config import EncoderDataArguments, EncoderModelArguments, EncoderTrainingArguments
from unicorn_hf.lit.pairs import collect_pairs


def encoder_parser() -> TrlParser:
    return TrlParser((EncoderModelArguments, EncoderDataArguments, EncoderTrainingArguments))


def parse_config(
    config_path: str | Path, **overrides
) -> tuple[EncoderModelArguments, EncoderDataArguments, EncoderTrainingArguments]:
    """The three argument dataclasses from a recipe YAML, with `overrides` replacing fields (no CLI involved)."""
    config = yaml.safe_load(Path(config_path).read_text()) or {}
    config.update(overrides)
    return encoder_parser().parse_dict(config)


HELD_OUT_IDS_FILE = "held_out_ids.json"  # written by `unicorn_hf.lit.train.train_encoder`


def trained_encoder_pairs(config_path: str | Path, encoder_dir: str | Path) -> tuple[list, list[str]]:
    """(every pair the encoder recipe collected, the ids it held out, in its order), for a finished `encoder_dir`.

    The pairs are collected again exactly as the recipe did (its sources, cap and seed). Raises `FileNotFoundError`
    naming the file when `encoder_dir` holds no finished encoder.
    """
    ids_path = Path(encoder_dir) / HELD_OUT_IDS_FILE
    if not ids_path.is_file():
        raise FileNotFoundError(f"{ids_path} is missing: train the encoder first (recipes/train_encoder.py)")
    model_args, data_args, training_args = parse_config(config_path)
    pairs, _ = collect_pairs(
        data_args.sources, data_args.max_pairs_per_source, training_args.seed, model_args.image_size
    )
    return pairs, json.loads(ids_path.read_text())
