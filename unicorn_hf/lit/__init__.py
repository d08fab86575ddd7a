"""A real paired image-text encoder built offline from packaged towers and packaged image-text pairs (LiT).

`build_default_encoder(output_dir, "recipes/tiny/encoder.yaml")` trains it once and returns an open_clip
`local-dir:` folder; see `unicorn_hf.lit.train` and `model_cards/encoder.md`.
"""

from __future__ import annotations

import importlib


# Lazy: `unicorn_hf.lit.pairs` / `.evaluation` stay importable without loading open_clip, timm and transformers.
_EXPORTS = {
    "build_default_encoder": "unicorn_hf.lit.train",
    "train_encoder": "unicorn_hf.lit.train",
    "load_encoder_folder": "unicorn_hf.lit.model",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
