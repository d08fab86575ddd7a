"""The LiT-style encoder as a plain open_clip model: timm image tower + HF text tower, each with a projection.

The model is an open_clip *custom config* (`CustomTextCLIP`). The folder holds `open_clip_config.json`,
`open_clip_model.safetensors` (the *full* state dict, so timm never fetches pretrained weights at load), and the text
tower's `config.json` + tokenizer files. open_clip always reads a `local-dir:` model's tokenizer from the folder, but
builds the HF text tower from `text_cfg.hf_model_name` as a path of its own; the saved config names it `"."` (the
folder itself, `TEXT_TOWER_HERE`), never the absolute path it was written at, so a copied or moved folder is the
same encoder. `load_encoder_folder` (and `unicorn_hf.encoders.load_encoder("local-dir:<folder>")`) point
it at the folder wherever it is; plain open_clip loads it from inside the folder, with HF_HUB_OFFLINE=1:

    model, _, preprocess = open_clip.create_model_and_transforms("local-dir:.")
    tokenizer = open_clip.get_tokenizer("local-dir:.")
"""

from __future__ import annotations

import json
import logging
import math
import shutil
from pathlib import Path

import open_clip
import torch
from open_clip.model import CustomTextCLIP
from safetensors.torch import save_file
from timm.data import resolve_data_config
from timm.models import get_pretrained_cfg

from unicorn_hf.encoders import text_tower_in_folder
from unicorn_hf.lit.config import EncoderModelArguments
from unicorn_hf.lit.pretrained_towers import load_image_trunk_weights, resolve


logger = logging.getLogger(__name__)

CONFIG_FILE = "open_clip_config.json"
WEIGHTS_FILE = "open_clip_model.safetensors"  # one of the names open_clip's `_find_checkpoint_in_dir` looks for
PROJECTIONS_FILE = "projections.safetensors"  # only the trained part (heads + logit scale), a few MB
# `text_cfg.hf_model_name` / `hf_tokenizer_name` of a saved folder: the folder itself, whatever path it is at.
TEXT_TOWER_HERE = "."
_TEXT_TOWER_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")


def open_clip_config(model_args: EncoderModelArguments, text_tower: str | Path) -> dict:
    """`open_clip_config.json` content: `model_cfg` (CustomTextCLIP kwargs) + `preprocess_cfg`."""
    pretrained_cfg = get_pretrained_cfg(model_args.image_tower)
    data_cfg = resolve_data_config(pretrained_cfg=pretrained_cfg.to_dict()) if pretrained_cfg else {}
    model_cfg = {
        "embed_dim": model_args.embed_dim,
        "init_logit_scale": math.log(1 / model_args.init_temperature),
        "vision_cfg": {
            "timm_model_name": model_args.image_tower,
            "timm_model_pretrained": False,  # weights come from the packaged checkpoint, never from a hub
            "timm_pool": "avg",  # the network's own global average pooling
            "timm_proj": model_args.image_proj,
            "image_size": model_args.image_size,
        },
        "text_cfg": {
            "hf_model_name": str(text_tower),
            "hf_tokenizer_name": str(text_tower),
            "hf_proj_type": model_args.text_proj,
            "hf_pooler_type": model_args.text_pooler,
            "context_length": model_args.context_length,
        },
    }
    preprocess_cfg = {
        "size": model_args.image_size,
        "mean": list(data_cfg.get("mean", open_clip.OPENAI_DATASET_MEAN)),
        "std": list(data_cfg.get("std", open_clip.OPENAI_DATASET_STD)),
        "interpolation": data_cfg.get("interpolation", "bicubic"),
        "resize_mode": "shortest",
    }
    return {"model_cfg": model_cfg, "preprocess_cfg": preprocess_cfg}


def build_pretrained_encoder(model_args: EncoderModelArguments) -> tuple[CustomTextCLIP, dict]:
    """The encoder with both packaged towers loaded and locked; only the projections and logit scale train."""
    text_tower = resolve(model_args.text_tower)
    config = open_clip_config(model_args, text_tower)
    model_cfg = json.loads(json.dumps(config["model_cfg"]))  # deep copy: the saved config must stay pristine
    model_cfg["text_cfg"]["hf_model_pretrained"] = True  # build time only: AutoModel.from_pretrained(local path)
    model = CustomTextCLIP(**model_cfg)
    load_image_trunk_weights(model.visual.trunk, model_args.image_weights)
    # LiT: lock both towers so that the image-text space is learned by the heads alone. BatchNorm statistics stay
    # fixed because the trunk only ever runs in eval mode; `freeze_bn_stats=True` must NOT be used: open_clip swaps
    # timm's BatchNormAct2d for torchvision's FrozenBatchNorm2d and so silently drops the fused ReLU6 activations.
    model.lock_image_tower(unlocked_groups=0, freeze_bn_stats=False)
    model.lock_text_tower(unlocked_layers=0, freeze_layer_norm=True)
    model.visual.trunk.to(memory_format=torch.channels_last)  # CPU speed only; saved weights are made contiguous
    model.eval()
    return model, config


def trainable_parameters(model: CustomTextCLIP) -> dict[str, torch.nn.Parameter]:
    return {name: param for name, param in model.named_parameters() if param.requires_grad}


def save_encoder(model: CustomTextCLIP, config: dict, model_args: EncoderModelArguments, output_dir: Path) -> Path:
    """Write the open_clip `local-dir:` folder (config, full weights, text tower config + tokenizer)."""
    output_dir.mkdir(parents=True, exist_ok=True)
    source = resolve(model_args.text_tower)
    for name in _TEXT_TOWER_FILES:
        if (source / name).is_file():
            shutil.copy2(source / name, output_dir / name)
    saved = json.loads(json.dumps(config))
    # The HF tower config now lives in the folder itself, so loading needs neither the package nor a hub; it is named
    # relative to the folder, so that nothing in it depends on where the folder was written.
    saved["model_cfg"]["text_cfg"]["hf_model_name"] = TEXT_TOWER_HERE
    saved["model_cfg"]["text_cfg"]["hf_tokenizer_name"] = TEXT_TOWER_HERE
    (output_dir / CONFIG_FILE).write_text(json.dumps(saved, indent=2) + "\n")
    state = {name: tensor.detach().contiguous() for name, tensor in model.state_dict().items()}
    save_file(state, str(output_dir / WEIGHTS_FILE))
    trained = {name: state[name] for name in trainable_parameters(model)}
    save_file(trained, str(output_dir / PROJECTIONS_FILE))
    logger.info("Saved encoder to %s (%d tensors, %d trained)", output_dir, len(state), len(trained))
    return output_dir


def load_encoder_folder(folder: str | Path):
    """(model, preprocess, tokenizer) as open_clip loads the folder, its text tower read from the folder itself."""
    folder = Path(folder).resolve()
    spec = f"local-dir:{folder}"
    model, _, preprocess = open_clip.create_model_and_transforms(spec, **text_tower_in_folder(folder))
    return model.eval(), preprocess, open_clip.get_tokenizer(spec)
