"""A real paired image-text encoder built offline from packaged towers and packaged image-text pairs (LiT).

`build_default_encoder(output_dir, "recipes/tiny/encoder.yaml")` trains it once (a few minutes on 2 CPU cores) and
returns an open_clip `local-dir:` folder; see `unicorn_hf.encoder.train` and `model_cards/encoder.md`.
"""

from unicorn_hf.encoder.model import load_encoder_folder
from unicorn_hf.encoder.train import build_default_encoder, train_encoder


__all__ = ["build_default_encoder", "load_encoder_folder", "train_encoder"]
