"""The argument parser of `recipes/train_encoder.py`, shared with `build_default_encoder`."""

from __future__ import annotations

from pathlib import Path

import yaml
from trl import TrlParser

from unicorn_hf.encoder.config import EncoderDataArguments, EncoderModelArguments, EncoderTrainingArguments


def encoder_parser() -> TrlParser:
    return TrlParser((EncoderModelArguments, EncoderDataArguments, EncoderTrainingArguments))


def parse_config(
    config_path: str | Path, **overrides
) -> tuple[EncoderModelArguments, EncoderDataArguments, EncoderTrainingArguments]:
    """The three argument dataclasses from a recipe YAML, with `overrides` replacing fields (no CLI involved)."""
    config = yaml.safe_load(Path(config_path).read_text()) or {}
    config.update(overrides)
    return encoder_parser().parse_dict(config)
