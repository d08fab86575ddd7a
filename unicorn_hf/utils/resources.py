"""The files the library runs that live outside the package in a checkout: recipe scripts and YAMLs, accelerate
configs, card templates.

In a source checkout they are `recipes/`, `accelerate_configs/` and `model_cards/` at the repository root. A wheel
(`pip install .`, not editable) ships the same folders inside the package as `unicorn_hf/_recipes`,
`unicorn_hf/_accelerate_configs` and `unicorn_hf/_model_cards` (see `setup.py`), so the quickstart and
`--update_model_card` work without the checkout. `materialize` copies them into a working directory, so that the
recipes' relative paths (`recipes/tiny/seeds.jsonl`, `outputs/tiny/...`) resolve there exactly as in a checkout.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path


logger = logging.getLogger(__name__)

PACKAGE_DIR = Path(__file__).resolve().parent.parent  # utils/ -> unicorn_hf/
# The folders shipped as package data, by their name in a checkout.
BUNDLED = ("recipes", "accelerate_configs", "model_cards")
_CHECKOUT_MARKER = "setup.cfg"  # a source checkout's root holds it; site-packages does not


def checkout_root() -> Path | None:
    """The repository root when running from a source checkout (editable install or PYTHONPATH), else None."""
    root = PACKAGE_DIR.parent
    return root if (root / _CHECKOUT_MARKER).is_file() and (root / "recipes").is_dir() else None


def bundled_dir(name: str) -> Path:
    """`recipes`, `accelerate_configs` or `model_cards`: the checkout's folder, else the copy inside the package."""
    if name not in BUNDLED:
        raise ValueError(f"{name!r} is not a bundled folder; expected one of {BUNDLED}")
    root = checkout_root()
    if root is not None and (root / name).is_dir():
        return root / name
    packaged = PACKAGE_DIR / f"_{name}"
    if packaged.is_dir():
        return packaged
    raise FileNotFoundError(
        f"Neither a checkout's {name}/ nor the packaged {packaged} exists: reinstall unicorn-hf from a wheel built "
        "with `pip install .` (setup.py bundles these folders), or run from a source checkout."
    )


def materialize(into: str | Path = ".", names: tuple[str, ...] = ("recipes", "accelerate_configs")) -> list[Path]:
    """Copy the bundled folders into `into` (missing files only: a file the user edited is never overwritten).

    Returns the folders written to. A no-op where `into` is the checkout itself.
    """
    into = Path(into).resolve()
    written = []
    for name in names:
        source, target = bundled_dir(name), into / name
        if source.resolve() == target:
            continue
        for path in source.rglob("*"):
            if path.is_dir() or "__pycache__" in path.parts:
                continue
            destination = target / path.relative_to(source)
            if not destination.exists():
                destination.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, destination)
        written.append(target)
        logger.info("Recipe files from the installed package are in %s (existing files kept)", target)
    return written


__all__ = ["BUNDLED", "bundled_dir", "checkout_root", "materialize"]
