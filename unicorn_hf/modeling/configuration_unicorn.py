"""Configuration of the Unicorn vision-language model.

Self-contained (imports only transformers and the standard library) so that `push_to_hub` can ship it as remote
code next to `modeling_unicorn.py` and `processing_unicorn.py`.
"""

from __future__ import annotations

import re

from transformers import AutoConfig, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec
from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

from .modality_transfer import IMAGE_MEAN_CHOICES, IMAGE_MEAN_METHODS, TransferSettings


PROJECTOR_PATTERN = re.compile(r"^(linear|mlp(\d+)x_gelu)$")
# Image towers a checkpoint can carry: the transformers class that maps pixels into the paired encoder's joint
# embedding space, the output field holding that embedding, and the config field giving its width. `timm_wrapper`
# holds an open_clip timm trunk with its linear head as timm's classifier (`unicorn_hf.encoders.image_tower`); an
# open_clip ViT has no transformers class to hold its weights (`unicorn_hf.training.builder.attach_image_tower`).
VISION_TOWERS = {
    "clip_vision_model": ("CLIPVisionModelWithProjection", "image_embeds", "projection_dim"),
    "siglip_vision_model": ("SiglipVisionModel", "pooler_output", "hidden_size"),
    "timm_wrapper": ("TimmWrapperForImageClassification", "logits", "num_labels"),
}


def projector_depth(projector_type: str) -> int:
    """Number of linear layers of a projector type: `linear` -> 1, `mlp2x_gelu` -> 2 (LLaVA-1.5), `mlpNx_gelu` -> N."""
    match = PROJECTOR_PATTERN.match(projector_type)
    if match is None:
        raise ValueError(f"projector_type={projector_type!r} is not supported; expected 'linear' or 'mlp<N>x_gelu'.")
    depth = 1 if match.group(1) == "linear" else int(match.group(2))
    if depth < 1:
        raise ValueError(f"projector_type={projector_type!r} needs at least one layer.")
    return depth


class UnicornConfig(PreTrainedConfig):
    r"""
    Configuration of [`UnicornForConditionalGeneration`]: a causal LM (`text_config`) fed with one embedding per
    sample from a CLIP-style encoder (`embed_dim` wide), projected and copied into `num_image_tokens` positions.

    Args:
        text_config (`dict` or `PreTrainedConfig`):
            Config of the language model; any architecture that `AutoModelForCausalLM` knows (Llama, Qwen2, ...).
        embed_dim (`int`):
            Width of `image_embeds` (1280 for the paper's LLM2CLIP encoder).
        projector_type (`str`):
            `linear` or `mlp<N>x_gelu` (`mlp2x_gelu` as in LLaVA-1.5 and the paper).
        num_image_tokens (`int`):
            How many `<image>` positions receive the projected embedding (576 in the paper, 1 is allowed).
        image_token_id (`int`):
            Token id of `<image>` in the tokenizer.
        encoder_id (`str`, *optional*):
            Path-free id of the paired text/image encoder whose embeddings the model was trained on (for display and
            to refuse another encoder's embeddings).
        encoder (`dict`, *optional*):
            The same encoder, structured (`unicorn_hf.encoders.EncoderSpec.to_dict()`: library, name,
            pretrained tag, init seed, content fingerprint of a local folder, its relative location): what
            evaluation rebuilds the encoder from. Never holds a path of the machine it ran on.
        modality_transfer (`dict`, *optional*):
            The modality transfer rule the model was trained with (`modality_transfer.TransferSettings`: `method`
            one of none / mean_shift / capdec / c3 / realign / memory_projection, `renormalize`, `add_image_mean`,
            `noise_std`, `memory_size`, `memory_temperature`, `project_images_onto_memory`). Its tensors are the
            `modality_statistics.*` buffers. Defaults to the paper's mean shift without re-normalisation (configs
            written before this field existed give `renormalize_after_shift`, which is read into it).
        has_image_mean (`bool`):
            Whether the `image_mean` buffer holds a real image-embedding mean (else only `text_mean` is known).
        vision_config (`dict` or `PreTrainedConfig`, *optional*):
            The frozen image tower the checkpoint carries (a `clip_vision_model` with its projection, a
            `siglip_vision_model`, or a `timm_wrapper` whose classifier is the projection), so that `pixel_values`
            work like LLaVA's; None (the default) = the model takes `image_embeds` only. Training never runs it.
        image_tower_mean (`str`, *optional*):
            Which stored mean the tower's embeddings are shifted by before the projector: "image", "text" or "none"
            (methods whose image side subtracts no mean take "none").
    """

    model_type = "unicorn"
    sub_configs_defaults = {
        "text_config": SubConfigSpec(config_class=AutoConfig, model_type="llama"),
        "vision_config": SubConfigSpec(config_class=AutoConfig, model_type="clip_vision_model", optional=True),
    }

    text_config: dict | PreTrainedConfig | None = None
    embed_dim: int = 1280
    projector_type: str = "mlp2x_gelu"
    num_image_tokens: int = 576
    image_token_id: int | None = None
    encoder_id: str | None = None
    encoder: dict | None = None
    modality_transfer: dict | None = None
    has_image_mean: bool = False
    vision_config: dict | PreTrainedConfig | None = None
    image_tower_mean: str | None = None
    tie_word_embeddings: bool = False

    def __post_init__(self, **kwargs):
        if isinstance(self.vision_config, dict) and self.vision_config.get("model_type") in VISION_TOWERS:
            # Through the class's own `from_dict`, as a top-level config.json is read: timm's config keeps its width
            # as `num_classes` on disk and maps it to `num_labels` only there (a plain constructor call drops it).
            from transformers import CONFIG_MAPPING

            self.vision_config = CONFIG_MAPPING[self.vision_config["model_type"]].from_dict(self.vision_config)
        super().__post_init__(**kwargs)

        text_type = self.text_config.model_type
        if text_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
            raise ValueError(
                f"text_config.model_type={text_type!r} is not a causal language model known to "
                "AutoModelForCausalLM; Unicorn needs a decoder-only LM (llama, qwen2, mistral, ...)."
            )
        projector_depth(self.projector_type)
        if self.modality_transfer is None:  # written before the rule had its own settings: the paper's mean shift
            renormalize = bool(self.__dict__.pop("renormalize_after_shift", False))
            self.modality_transfer = {"method": "mean_shift", "renormalize": renormalize}
        self.modality_transfer = TransferSettings.from_dict(dict(self.modality_transfer)).to_dict()
        if self.embed_dim < 1:
            raise ValueError(f"embed_dim must be positive, got {self.embed_dim}.")
        if self.num_image_tokens < 1:
            raise ValueError(f"num_image_tokens must be >= 1, got {self.num_image_tokens}.")
        if self.vision_config is not None:
            check_vision_config(self.vision_config, self.embed_dim)
            if self.image_tower_mean not in IMAGE_MEAN_CHOICES:
                raise ValueError(
                    f"image_tower_mean={self.image_tower_mean!r}: a checkpoint with an image tower must say which "
                    f"mean shifts its embeddings, one of {IMAGE_MEAN_CHOICES}."
                )
            method = self.modality_transfer["method"]
            if method not in IMAGE_MEAN_METHODS and self.image_tower_mean != "none":
                raise ValueError(
                    f"image_tower_mean={self.image_tower_mean!r}, but the modality transfer method {method!r} "
                    f"subtracts no image mean at inference (only {IMAGE_MEAN_METHODS} do): use 'none'."
                )
        # Same workaround as LLaVA: the embedding tying of the wrapped LM is decided by its own config.
        if not self.tie_word_embeddings and getattr(self.text_config, "tie_word_embeddings", False):
            self.tie_word_embeddings = True


def check_vision_config(vision_config: PreTrainedConfig, embed_dim: int) -> None:
    """Raise unless the tower is one a checkpoint can carry and its output is `embed_dim` wide."""
    if vision_config.model_type not in VISION_TOWERS:
        raise ValueError(
            f"vision_config.model_type={vision_config.model_type!r} is not an image tower Unicorn can carry; "
            f"supported: {sorted(VISION_TOWERS)} (the image side of a transformers CLIP or SigLIP, or a timm trunk "
            "with a linear head)."
        )
    width = getattr(vision_config, VISION_TOWERS[vision_config.model_type][2])
    if width != embed_dim:
        raise ValueError(
            f"The image tower gives {width}-d embeddings but the model was trained on embed_dim={embed_dim}: it is "
            "not the image side of the encoder the model was trained with."
        )


__all__ = ["VISION_TOWERS", "UnicornConfig", "check_vision_config"]
