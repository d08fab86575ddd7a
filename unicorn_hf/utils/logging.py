"""One logging set-up for every entry script: our logger plus the HF libraries at the same level, and plain
tracebacks."""

from __future__ import annotations

import logging
import sys


def setup_logging(level: int | str = logging.INFO) -> None:
    """Log `unicorn_hf` and the HF libraries at `level` to stdout, one format. `datasets` is optional: the vLLM
    serving venv (`scripts/serve_check.sh`) installs only what serving needs."""
    # `import distilabel` installs rich tracebacks with every frame's local variables, so an error of any stage would
    # print an API key or token held in a local (`api_key = '...'`). The standard hook prints no locals.
    sys.excepthook = sys.__excepthook__
    import transformers  # here, like datasets below: entry scripts call this first, it must stay cheap to import

    try:
        import datasets  # optional: the vLLM serving venv has no datasets
    except ImportError:
        datasets = None

    logging.basicConfig(
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        handlers=[logging.StreamHandler(sys.stdout)],
        level=level,
        force=True,
    )
    numeric = logging.getLevelName(level) if isinstance(level, str) else level
    if datasets is not None:
        datasets.utils.logging.set_verbosity(numeric)
    transformers.utils.logging.set_verbosity(numeric)
    transformers.utils.logging.enable_default_handler()
    transformers.utils.logging.enable_explicit_format()
