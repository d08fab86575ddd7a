"""transformers' own model tests, run against the Unicorn classes (see README.md)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest


VENDOR = Path(__file__).resolve().parent / "_vendor"
# transformers' test files are imported as the package `transformers_tests`, never collected themselves: their
# `test_*.py` names would otherwise pull in transformers' own test classes.
collect_ignore_glob = ["_vendor/*"]
if VENDOR.is_dir() and str(VENDOR) not in sys.path:
    sys.path.insert(0, str(VENDOR))

# The markers transformers' test files and `transformers.testing_utils` put on tests (transformers registers them in
# its own conftest.py); the repo runs pytest with --strict-markers.
TRANSFORMERS_MARKERS = (
    "accelerate_tests",
    "flash_attn_test",
    "flash_attn_3_test",
    "flash_attn_4_test",
    "torch_compile_test",
    "torch_export_test",
    "generate",
    "is_agent_test",
    "is_expert_parallel_test",
    "is_fsdp_test",
    "is_pipeline_test",
    "is_staging_test",
    "is_tensor_parallel_test",
    "is_training_test",
    "not_device_test",
    "order",
)


def pytest_configure(config):
    for marker in TRANSFORMERS_MARKERS:
        config.addinivalue_line("markers", f"{marker}: set by transformers' model tests (tests/transformers_suite)")


@pytest.fixture(autouse=True)
def transformers_default_verbosity():
    """transformers' config tests assert that building a config logs nothing at its default level (warning); the
    project's scripts raise it to info (`setup_logging`), and a test that ran one in-process earlier leaves it
    there."""
    from transformers.utils import logging as transformers_logging

    before = transformers_logging.get_verbosity()
    transformers_logging.set_verbosity_warning()
    yield
    transformers_logging.set_verbosity(before)
