"""Write a copy of a Unicorn checkpoint without its image tower (it then takes `image_embeds` only).

`make serve-check` uses it to show that such a checkpoint refuses pixels with a 400 and answers embeddings.
Command: python scripts/serve_check_strip_tower.py outputs/tiny/sft /tmp/unicorn-serve-check/sft-no-tower
"""

from __future__ import annotations

import logging
import sys

import torch
from transformers import AutoModelForImageTextToText, AutoProcessor

import unicorn_hf  # noqa: F401  (registers the Auto classes)
from unicorn_hf.utils.logging import setup_logging


logger = logging.getLogger(__name__)


def main(source: str, destination: str) -> None:
    model = AutoModelForImageTextToText.from_pretrained(source, dtype=torch.float32)
    processor = AutoProcessor.from_pretrained(source)
    if model.vision_tower is None:
        raise ValueError(f"{source} carries no image tower: nothing to strip.")
    del model.model.vision_tower
    model.config.vision_config = None
    model.config.image_tower_mean = None
    processor.image_processor = None
    model.save_pretrained(destination)
    processor.save_pretrained(destination)
    logger.info("Wrote %s: %s without its image tower", destination, source)


if __name__ == "__main__":
    setup_logging()
    main(*sys.argv[1:3])
