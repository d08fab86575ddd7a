"""The paired encoder's image side as a transformers model a Unicorn checkpoint can carry, with its image processor.

- A transformers CLIP or SigLIP encoder (`hf:` specs): `CLIPVisionModelWithProjection` / `SiglipVisionModel`.
- An open_clip encoder whose image tower is a timm trunk (the quickstart's EfficientNet-Lite0 one): transformers'
  `TimmWrapperForImageClassification` holds the trunk, and timm's own classifier layer holds open_clip's linear head
  (open_clip's `encode_image` is `head.proj(trunk(x))`, pooled by the trunk; the timm classifier is the same
  `Linear` on the same pooled features). `TimmWrapperImageProcessor` runs the same torchvision transform as
  open_clip's `preprocess` (shortest-side resize, centre crop, normalise). The conversion is checked on a probe
  batch before it is returned, so a tower that would not reproduce `encode_image` is refused, never carried.

Anything else (open_clip's own ViTs, an MLP or attention-pool head, LLM2CLIP) has no transformers class that holds
it faithfully; `image_tower_from_encoder` says so and names the ways out.
"""

from __future__ import annotations

import copy

import open_clip
import torch
from open_clip.timm_model import TimmModel
from transformers import (
    CLIPModel,
    CLIPVisionModelWithProjection,
    SiglipModel,
    SiglipVisionModel,
    TimmWrapperConfig,
    TimmWrapperForImageClassification,
    TimmWrapperImageProcessor,
)

from unicorn_hf.encoders.hf_clip_encoder import HFClipEncoder
from unicorn_hf.encoders.open_clip_encoder import OpenClipEncoder


# The probe batch that checks a converted tower against the encoder's own image forward (seeded, so the check is
# deterministic); the tolerance is float32 round-off over a few dozen layers, far below any real difference.
PROBE_SEED = 0
PROBE_BATCH = 2
PROBE_ATOL = 1e-4

OPEN_CLIP_WAYS_OUT = (
    "Ways out: (1) keep the encoder beside the checkpoint (copy an open_clip folder to <checkpoint>/encoder; it is "
    "found by its content fingerprint) and run images through unicorn_hf.evaluation.inference.UnicornImageQA or "
    "make_pipeline; (2) train with an encoder whose image tower transformers holds: a transformers CLIP or SigLIP "
    "(transfer YAML `encoder: hf:<id or folder>`) or an open_clip model with a timm image trunk and a linear (or no) "
    "head (`timm_model_name`, `timm_proj: linear`)."
)


class TowerNotCarriable(ValueError):
    """The encoder's image tower cannot live inside a transformers checkpoint (the message names the ways out)."""


def image_tower_from_encoder(encoder):
    """(tower, image_processor): the paired encoder's image side as a frozen transformers model in eval mode, whose
    output field (`VISION_TOWERS`) is the encoder's unnormalised image embedding [B, D], and the image processor
    that turns PIL images into its `pixel_values` [B, 3, H, W].

    Raises `TowerNotCarriable` (a ValueError) where no transformers class holds the tower faithfully.
    """
    model = getattr(encoder, "model", None)
    if isinstance(encoder, HFClipEncoder) and isinstance(model, CLIPModel):
        tower, image_processor = _clip_tower(model), encoder.image_processor
    elif isinstance(encoder, HFClipEncoder) and isinstance(model, SiglipModel):
        tower, image_processor = _siglip_tower(model), encoder.image_processor
    elif isinstance(encoder, OpenClipEncoder):
        tower, image_processor = open_clip_timm_tower(encoder)
    else:
        raise TowerNotCarriable(
            f"Encoder {encoder.id} ({type(encoder).__name__}) cannot live inside a transformers checkpoint: no "
            "transformers class holds its image tower, so `pipeline('image-text-to-text', model=folder)` cannot "
            f"embed images by itself. {OPEN_CLIP_WAYS_OUT}"
        )
    return tower.to(encoder.dtype).requires_grad_(False).eval(), image_processor


def _clip_tower(model):
    vision_config = copy.deepcopy(model.config.vision_config)
    vision_config.projection_dim = model.config.projection_dim  # the joint space's width
    tower = CLIPVisionModelWithProjection(vision_config)
    tower.vision_model.load_state_dict(model.vision_model.state_dict())
    tower.visual_projection.load_state_dict(model.visual_projection.state_dict())
    return tower


def _siglip_tower(model):
    tower = SiglipVisionModel(model.config.vision_config)
    tower.vision_model.load_state_dict(model.vision_model.state_dict())
    return tower


# ---- open_clip with a timm trunk -> TimmWrapperForImageClassification -----------------------------------------------
def open_clip_timm_tower(encoder):
    """(TimmWrapperForImageClassification, TimmWrapperImageProcessor) reproducing `encoder.model.encode_image` and
    `encoder.preprocess`, checked on a probe batch; `TowerNotCarriable` where that cannot be done faithfully."""
    visual = encoder.model.visual
    if not isinstance(visual, TimmModel):
        raise TowerNotCarriable(
            f"Encoder {encoder.id} cannot live inside a transformers checkpoint: its image tower is open_clip's own "
            f"{type(visual).__name__}, which no transformers class holds. {OPEN_CLIP_WAYS_OUT}"
        )
    tower = _timm_wrapper(encoder.id, visual, encoder.dim)
    _check_same_embeddings(encoder.id, visual, tower)
    return tower, timm_image_processor(encoder.id, encoder.model, visual.trunk.pretrained_cfg["architecture"])


def _timm_wrapper(encoder_id: str, visual, embed_dim: int):
    """The trunk in `TimmWrapperForImageClassification`, with open_clip's linear head as timm's classifier."""
    trunk, head = visual.trunk, dict(visual.head.named_children())
    unsupported = sorted(set(head) - {"drop", "proj"})
    projection = head.get("proj")
    if unsupported or not (projection is None or isinstance(projection, torch.nn.Linear)):
        raise TowerNotCarriable(
            f"Encoder {encoder_id}: its open_clip image head has {unsupported or ['a non-linear proj']} (an MLP or "
            "attention-pool head), which timm's classifier layer cannot hold; only `timm_proj: linear` or unset (the "
            f"trunk's own classifier as the projection) can be carried. {OPEN_CLIP_WAYS_OUT}"
        )
    pool = getattr(getattr(trunk, "global_pool", None), "pool_type", None)
    if not pool:
        raise TowerNotCarriable(
            f"Encoder {encoder_id}: its timm trunk {type(trunk).__name__} has no global pool that timm can rebuild "
            f"(`global_pool`). {OPEN_CLIP_WAYS_OUT}"
        )
    config = TimmWrapperConfig(
        architecture=trunk.pretrained_cfg["architecture"],
        num_labels=embed_dim,
        model_args={"global_pool": pool},
    )
    tower = TimmWrapperForImageClassification(config)
    state = dict(trunk.state_dict())
    classifier = _classifier_name(tower.timm_model)
    if projection is not None:  # open_clip removed the trunk's classifier (num_classes=0) and projects in its head
        state[f"{classifier}.weight"] = projection.weight  # [D, F]
        state[f"{classifier}.bias"] = (
            projection.bias if projection.bias is not None else projection.weight.new_zeros(embed_dim)
        )
    elif trunk.num_classes != embed_dim:  # `timm_proj: none`: the trunk's pooled features, not the joint space
        raise TowerNotCarriable(
            f"Encoder {encoder_id}: its image tower has no projection into the {embed_dim}-d joint space (open_clip "
            f"`timm_proj: none`, {trunk.num_features}-d features). {OPEN_CLIP_WAYS_OUT}"
        )
    # else: the trunk kept its own classifier as the projection (open_clip's `timm_proj` unset); it is in `state`
    tower.timm_model.load_state_dict(state, strict=True)  # a missing or extra tensor is an error
    return tower


def _classifier_name(timm_model) -> str:
    return timm_model.pretrained_cfg.get("classifier", "classifier")


def _check_same_embeddings(encoder_id: str, visual, tower) -> None:
    """Refuse a converted tower whose output differs from open_clip's on a seeded probe batch [B, 3, H, W]."""
    height, width = visual.image_size
    generator = torch.Generator().manual_seed(PROBE_SEED)
    probe = torch.randn(PROBE_BATCH, 3, height, width, generator=generator)
    with torch.inference_mode():
        expected = copy.deepcopy(visual).float().eval()(probe)  # [B, D]: open_clip's encode_image, unnormalised
        got = tower.float().eval()(pixel_values=probe).logits  # [B, D]
    if got.shape != expected.shape or not torch.allclose(got, expected, atol=PROBE_ATOL, rtol=0):
        difference = (got - expected).abs().max().item() if got.shape == expected.shape else "shape"
        raise TowerNotCarriable(
            f"Encoder {encoder_id}: the timm tower built from its trunk does not reproduce open_clip's encode_image "
            f"(max difference {difference}); it is not carried. {OPEN_CLIP_WAYS_OUT}"
        )


def timm_image_processor(encoder_id: str, open_clip_model, architecture: str):
    """`TimmWrapperImageProcessor` with open_clip's eval transform: shortest-side resize, centre crop, normalise."""
    cfg = open_clip.get_model_preprocess_cfg(open_clip_model)
    size = cfg["size"] if isinstance(cfg["size"], (tuple, list)) else (cfg["size"], cfg["size"])
    resize_mode = cfg.get("resize_mode", "shortest")
    if resize_mode != "shortest" or size[0] != size[1] or cfg.get("mode", "RGB") != "RGB":
        raise TowerNotCarriable(
            f"Encoder {encoder_id}: its open_clip preprocessing (resize_mode={resize_mode!r}, size={tuple(size)}) has "
            "no timm eval transform that reproduces it; only a square shortest-side resize + centre crop does. "
            f"{OPEN_CLIP_WAYS_OUT}"
        )
    data_config = {
        "input_size": (3, *size),
        "interpolation": cfg.get("interpolation", "bicubic"),
        "mean": tuple(cfg["mean"]),
        "std": tuple(cfg["std"]),
        "crop_pct": 1.0,  # resize the shortest side to the crop size itself, as open_clip does
        "crop_mode": "center",
    }
    return TimmWrapperImageProcessor(pretrained_cfg=data_config, architecture=architecture)


__all__ = ["TowerNotCarriable", "image_tower_from_encoder", "open_clip_timm_tower", "timm_image_processor"]
