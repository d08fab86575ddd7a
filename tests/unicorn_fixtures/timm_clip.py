"""A tiny open_clip encoder with a timm image trunk, saved as a `local-dir:` folder with its weights: the quickstart
encoder's shape (timm trunk + linear head, open_clip's preprocessing) at a size that builds in a second. Its
BatchNorm statistics are randomised too, so that a conversion which dropped them would show."""

from __future__ import annotations

import json
from pathlib import Path

import torch


EMBED_DIM = 16
IMAGE_SIZE = 64
TIMM_TRUNK = "test_efficientnet"  # timm's 0.36M-parameter EfficientNet for tests (BatchNorm, SE, depthwise convs)


def tiny_timm_open_clip_config(proj: str | None = "linear") -> dict:
    return {
        "model_cfg": {
            "embed_dim": EMBED_DIM,
            "vision_cfg": {"timm_model_name": TIMM_TRUNK, "timm_model_pretrained": False, "timm_pool": "avg",
                           "timm_proj": proj, "image_size": IMAGE_SIZE},
            "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
        },
        "preprocess_cfg": {
            "size": IMAGE_SIZE,
            "mean": [0.485, 0.456, 0.406],
            "std": [0.229, 0.224, 0.225],
            "interpolation": "bicubic",
            "resize_mode": "shortest",
        },
    }  # fmt: skip


def write_tiny_timm_open_clip(folder: str | Path, seed: int = 0, proj: str | None = "linear") -> Path:
    """Config + full weights (`open_clip_model.safetensors`), so the folder loads with no init seed."""
    import open_clip
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = tiny_timm_open_clip_config(proj)
    (folder / "open_clip_config.json").write_text(json.dumps(config, indent=2))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = open_clip.CLIP(**config["model_cfg"])
        for module in model.visual.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.normal_(0.0, 0.1)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.data.uniform_(0.5, 1.5)
                module.bias.data.normal_(0.0, 0.1)
    state = {name: tensor.detach().contiguous() for name, tensor in model.state_dict().items()}
    save_file(state, str(folder / "open_clip_model.safetensors"))
    return folder
