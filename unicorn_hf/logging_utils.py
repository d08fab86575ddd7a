"""One logging set-up for every entry script: our logger plus the HF libraries at the same level."""

from __future__ import annotations

import logging
import sys


def setup_logging(level: int | str = logging.INFO) -> None:
    import datasets
    import transformers

    logging.basicConfig(
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        handlers=[logging.StreamHandler(sys.stdout)],
        level=level,
        force=True,
    )
    numeric = logging.getLevelName(level) if isinstance(level, str) else level
    datasets.utils.logging.set_verbosity(numeric)
    transformers.utils.logging.set_verbosity(numeric)
    transformers.utils.logging.enable_default_handler()
    transformers.utils.logging.enable_explicit_format()
