"""Build and set up a Unicorn model, library-side: what training and evaluation call and a remote-code checkpoint
never needs (forward and generate live in `unicorn_hf/modeling`).

- `build_from_text_model`: a fresh model + processor from a causal LM (Hub id, local folder, GGUF or `pkg://`);
- `wrap_text_model`: the same around an already loaded LM;
- `set_modality_transfer`: store the transfer rule and statistics the training data was made with;
- `attach_image_tower`: carry the paired encoder's frozen image tower, so that `pixel_values` work.
"""

from __future__ import annotations

import logging

import torch
from tokenizers import AddedToken
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel

from unicorn_hf.modeling.configuration_unicorn import UnicornConfig, check_vision_config
from unicorn_hf.modeling.modality_transfer import (
    IMAGE_MEAN_CHOICES,
    IMAGE_MEAN_METHODS,
    TransferSettings,
    UnicornModalityTransfer,
)
from unicorn_hf.modeling.modeling_unicorn import UnicornForConditionalGeneration
from unicorn_hf.modeling.processing_unicorn import UnicornProcessor
from unicorn_hf.utils.assets import forget_gguf_quantization, resolve_model_path


logger = logging.getLogger(__name__)


def build_from_text_model(
    model_name_or_path: str,
    *,
    embed_dim: int,
    projector_type: str,
    num_image_tokens: int,
    image_token: str = "<image>",
    encoder_id: str | None = None,
    encoder: dict | None = None,
    modality_transfer: dict | None = None,
    gguf_file: str | None = None,
    revision: str | None = None,
    dtype: torch.dtype | str | None = None,
    attn_implementation: str | None = None,
    trust_remote_code: bool = False,
) -> tuple[UnicornForConditionalGeneration, UnicornProcessor]:
    """Load the LM and its tokenizer, add `<image>` as a special token, resize the embeddings and wrap the LM.

    The new token's embedding row is the mean of the others (transformers' `mean_resizing`); it is never trained
    on since every `<image>` position is overwritten by the projected embedding.
    """
    path = resolve_model_path(model_name_or_path)
    load_kwargs = {"revision": revision, "trust_remote_code": trust_remote_code}
    if gguf_file:
        load_kwargs["gguf_file"] = gguf_file
    tokenizer = AutoTokenizer.from_pretrained(path, **load_kwargs)
    if image_token not in tokenizer.get_vocab():
        tokenizer.add_tokens([AddedToken(image_token, special=True, normalized=False)], special_tokens=True)
    if tokenizer.pad_token is None:  # batching needs one; the EOS token is the usual stand-in
        tokenizer.pad_token = tokenizer.eos_token
    text_model = AutoModelForCausalLM.from_pretrained(
        path, dtype=dtype, attn_implementation=attn_implementation, **load_kwargs
    )
    text_model = forget_gguf_quantization(text_model)
    if text_model.get_input_embeddings().num_embeddings < len(tokenizer):
        text_model.resize_token_embeddings(len(tokenizer), mean_resizing=True)
    image_token_id = tokenizer.convert_tokens_to_ids(image_token)
    model = wrap_text_model(
        text_model,
        image_token_id=image_token_id,
        embed_dim=embed_dim,
        projector_type=projector_type,
        num_image_tokens=num_image_tokens,
        encoder_id=encoder_id,
        encoder=encoder,
        modality_transfer=modality_transfer,
    )
    # The LM as the user named it (a Hub id, `pkg://...`), not the cache folder `resolve_model_path` found it in.
    model.config.name_or_path = model.config.text_config.name_or_path = model_name_or_path
    processor = UnicornProcessor(tokenizer=tokenizer, image_token=image_token, num_image_tokens=num_image_tokens)
    logger.info(
        "Built Unicorn from %s: LM %.1fM params, projector %s (%d -> %d), %d image token(s), <image> id %d",
        model_name_or_path,
        sum(p.numel() for p in text_model.parameters()) / 1e6,
        projector_type,
        embed_dim,
        text_model.config.hidden_size,
        num_image_tokens,
        image_token_id,
    )
    return model, processor


def wrap_text_model(
    text_model: PreTrainedModel,
    image_token_id: int,
    embed_dim: int,
    projector_type: str,
    num_image_tokens: int,
    encoder_id: str | None = None,
    modality_transfer: dict | None = None,
    encoder: dict | None = None,
) -> UnicornForConditionalGeneration:
    """Wrap an already loaded causal LM (whose vocabulary holds `<image>`) without copying or re-initialising it:
    its backbone becomes `model.language_model` and its head `lm_head` (tied weights stay tied).

    `build_from_text_model` loads the LM and tokenizer, adds the token and calls this.
    """
    config = UnicornConfig(
        text_config=text_model.config,
        embed_dim=embed_dim,
        projector_type=projector_type,
        num_image_tokens=num_image_tokens,
        image_token_id=image_token_id,
        encoder_id=encoder_id,
        encoder=encoder,
        modality_transfer=modality_transfer,
    )
    with torch.device("meta"):  # skip a random init of a full LLM that is replaced right away
        model = UnicornForConditionalGeneration(config)
    model.model.language_model = text_model.base_model
    model.lm_head = text_model.get_output_embeddings()
    parameter = next(text_model.parameters())
    for module in (model.model.projector, model.model.modality_statistics):
        module.to_empty(device=parameter.device)
        module.apply(model._init_weights)
    model.model.projector.to(parameter.dtype)
    model._tied_weights_keys = {"lm_head.weight": f"{model._input_embeddings_name()}.weight"}
    model.generation_config = text_model.generation_config
    model._suppress_image_token()
    return model


def set_modality_transfer(
    model: UnicornForConditionalGeneration,
    text_mean: torch.Tensor,
    image_mean: torch.Tensor | None = None,
    *,
    settings: TransferSettings | dict | None = None,
    realign_mean: torch.Tensor | None = None,
    realign_scale: float | torch.Tensor | None = None,
    memory: torch.Tensor | None = None,
    encoder_id: str | None = None,
    encoder: dict | None = None,
) -> None:
    """Store the transfer rule the training data was made with, so that inference repeats it.

    Args:
        text_mean, image_mean: [D] means of the captions' and of unlabeled images' embeddings.
        settings: the rule (`TransferSettings` or its dict); None keeps `config.modality_transfer`.
        realign_mean, realign_scale: ReAlign's mu_hat [D] and s (method `realign`).
        memory: [memory_size, D] unit-norm text embeddings for memory projection.
        encoder_id, encoder: the paired encoder's id and structured record (`EncoderSpec.to_dict()`).

    Raises:
        ValueError: a tensor of the wrong shape (named), another encoder than the model's, or settings whose
            method needs a tensor that is not given.
    """
    dim = model.config.embed_dim
    if encoder_id is not None and model.config.encoder_id not in (None, encoder_id):
        raise ValueError(
            f"Statistics come from encoder {encoder_id!r} but the model was built for {model.config.encoder_id!r}."
        )
    if settings is not None:
        settings = settings if isinstance(settings, TransferSettings) else TransferSettings.from_dict(settings)
        model.config.modality_transfer = settings.to_dict()
    settings = TransferSettings.from_dict(model.config.modality_transfer)
    expected = {"text_mean": (dim,), "image_mean": (dim,), "realign_mean": (dim,),
                "memory": (settings.memory_size, dim)}  # fmt: skip
    given = {"text_mean": text_mean, "image_mean": image_mean, "realign_mean": realign_mean, "memory": memory}
    for name, tensor in given.items():
        if tensor is not None and tuple(tensor.shape) != expected[name]:
            raise ValueError(f"{name} has shape {tuple(tensor.shape)}, expected {expected[name]}.")
    needed = {"realign": ("image_mean", "realign_mean", "realign_scale"), "c3": ("image_mean",)}
    supplied = {**given, "realign_scale": realign_scale}
    missing = [name for name in needed.get(settings.method, ()) if supplied[name] is None]
    missing += ["memory"] if settings.memory_size and memory is None else []
    if missing:
        raise ValueError(f"modality transfer method {settings.method!r} needs {missing}, which were not given.")
    # The buffers a method carries depend on its settings (ReAlign's, the memory's size): rebuild the module.
    old = model.model.modality_statistics
    rebuilt = UnicornModalityTransfer(model.config).to(old.text_mean.device)
    rebuilt.image_mean.copy_(old.image_mean)
    model.model.modality_statistics = rebuilt
    rebuilt.text_mean.copy_(text_mean.to(rebuilt.text_mean))
    if image_mean is not None:
        rebuilt.image_mean.copy_(image_mean.to(rebuilt.image_mean))
        model.config.has_image_mean = True
    if settings.method == "realign":
        rebuilt.realign_mean.copy_(realign_mean.to(rebuilt.realign_mean))
        rebuilt.realign_scale.fill_(float(realign_scale))
    if settings.memory_size:
        rebuilt.memory.copy_(memory.to(rebuilt.memory))
    if encoder_id is not None:
        model.config.encoder_id = encoder_id
    if encoder is not None:
        model.config.encoder = dict(encoder)


def attach_image_tower(
    model: UnicornForConditionalGeneration, vision_tower: PreTrainedModel, mean: str | torch.Tensor = "image"
) -> None:
    """Carry the paired encoder's image side (frozen), as LLaVA carries `vision_tower`: afterwards `pixel_values`
    work and the checkpoint (weights + `vision_config`) is enough for `pipeline("image-text-to-text")`.

    Args:
        vision_tower: a `CLIPVisionModelWithProjection`, `SiglipVisionModel` or `TimmWrapperForImageClassification`
            (`VISION_TOWERS`) whose output is the image embedding of the encoder the model was trained with
            (`embed_dim` wide).
        mean: for the methods that subtract an image mean (`mean_shift`, `c3`), the mean its L2-normalised
            embeddings are shifted by: "image" (the stored `image_mean`), "text" (the training caption mean;
            leaves the modality gap), "none", or a [D] tensor (e.g. the mean of a set of images), which is stored
            as `image_mean`. Other methods take "none" (their image side subtracts nothing).

    An open_clip ViT tower (or LLM2CLIP's) has no transformers class to hold its weights, so it cannot be
    carried; `unicorn_hf.encoders.image_tower.image_tower_from_encoder` converts what can be (an open_clip timm
    trunk with a linear head included) and names the ways out for the rest.
    """
    check_vision_config(vision_tower.config, model.config.embed_dim)
    method = model.config.modality_transfer["method"]
    if isinstance(mean, torch.Tensor):
        if tuple(mean.shape) != (model.config.embed_dim,):
            raise ValueError(f"mean has shape {tuple(mean.shape)}, expected ({model.config.embed_dim},).")
        model.modality_statistics.image_mean.copy_(mean.to(model.modality_statistics.image_mean))
        model.config.has_image_mean = True
        mean = "image"
    if mean not in IMAGE_MEAN_CHOICES:
        raise ValueError(f"mean must be one of {IMAGE_MEAN_CHOICES} or a [D] tensor, got {mean!r}.")
    if method not in IMAGE_MEAN_METHODS and mean != "none":
        raise ValueError(
            f"mean={mean!r}: the modality transfer method {method!r} subtracts no image mean; pass mean='none'."
        )
    if mean == "image" and not model.config.has_image_mean:
        raise ValueError("This checkpoint stores no image_mean: pass mean='text', 'none' or a [D] tensor.")
    parameter = next(model.model.projector.parameters())
    model.model.vision_tower = vision_tower.to(parameter.device).requires_grad_(False).eval()
    model.config.vision_config = vision_tower.config
    model.config.image_tower_mean = mean
