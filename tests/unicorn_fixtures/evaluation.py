"""Tiny offline artifacts for the evaluation tests: a random-init open_clip folder and a saved Unicorn checkpoint.

Not used by the recipes: shared by the evaluation test files so that they build the same tiny things.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch


# A 1-layer ViT / 1-layer text transformer: builds in well under a second on a CPU.
TINY_OPEN_CLIP_CONFIG = {
    "model_cfg": {
        "embed_dim": 16,
        "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 16, "head_width": 16},
        "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
    },
    "preprocess_cfg": {
        "mean": [0.48145466, 0.4578275, 0.40821073],
        "std": [0.26862954, 0.26130258, 0.27577711],
        "interpolation": "bicubic",
        "resize_mode": "shortest",
    },
}


def write_tiny_open_clip(folder: str | Path) -> Path:
    """An open_clip `local-dir:` folder without weights (random init, seeded by the encoder's `init_seed`)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "open_clip_config.json").write_text(json.dumps(TINY_OPEN_CLIP_CONFIG, indent=2))
    return folder


def build_tiny_checkpoint(
    lm_path: str,
    output_dir: str | Path,
    encoder,
    *,
    num_image_tokens: int,
    training_info: dict | None = None,
    image_mean_from: list | None = None,
    text_mean_from: list[str] | None = None,
) -> Path:
    """A saved Unicorn checkpoint over `lm_path` for `encoder`, with modality statistics computed from real
    captions / photographs, and an optional `unicorn_training.json`."""
    from unicorn_hf.training.builder import build_from_text_model, set_modality_transfer

    torch.manual_seed(0)
    model, processor = build_from_text_model(
        lm_path,
        embed_dim=encoder.dim,
        projector_type="mlp2x_gelu",
        num_image_tokens=num_image_tokens,
        encoder_id=encoder.id,
        encoder=encoder.spec.to_dict(),
    )
    text_mean = encoder.encode_text(text_mean_from).mean(0) if text_mean_from else torch.zeros(encoder.dim)
    image_mean = encoder.encode_image(image_mean_from).mean(0) if image_mean_from else None
    set_modality_transfer(model, text_mean, image_mean, encoder_id=encoder.id, encoder=encoder.spec.to_dict())
    output_dir = Path(output_dir)
    model.save_pretrained(output_dir)
    processor.save_pretrained(output_dir)
    if encoder.local_path is not None and encoder.local_path.is_dir():
        # An open_clip folder cannot live in a transformers checkpoint as weights; copied beside them, evaluation
        # finds it by its content fingerprint (the config stores no path of this machine).
        shutil.copytree(encoder.local_path, output_dir / "encoder", dirs_exist_ok=True)
    if training_info is not None:
        (output_dir / "unicorn_training.json").write_text(json.dumps(training_info, indent=2))
    return output_dir
