"""One logging set-up for every entry script: our logger plus the HF libraries at the same level, and plain
tracebacks."""

from __future__ import annotations

import logging
import sys


def setup_logging(level: int | str = logging.INFO) -> None:
    # `import distilabel` installs rich tracebacks with every frame's local variables, so an error of any stage would
    # print an API key or token held in a local (`api_key = '...'`). The standard hook prints no locals.
    sys.excepthook = sys.__excepthook__
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
