"""The entry scripts' logging set-up (unicorn_hf/utils/logging.py)."""

from __future__ import annotations

import logging
import sys


def test_logging_sets_up_without_datasets_as_in_the_serving_venv(monkeypatch):
    """scripts/serve_check.sh's venv has no `datasets`: setup_logging must still set our level and transformers'
    (a fresh-clone `make serve-check` failed on `import datasets` here)."""
    import transformers

    from unicorn_hf.utils.logging import setup_logging

    monkeypatch.setitem(sys.modules, "datasets", None)  # `import datasets` raises ImportError
    setup_logging(logging.WARNING)
    assert logging.getLogger().level == logging.WARNING
    assert transformers.utils.logging.get_verbosity() == logging.WARNING
    monkeypatch.undo()
    setup_logging(logging.INFO)
    import datasets

    assert datasets.utils.logging.get_verbosity() == logging.INFO
