"""Build a fresh Unicorn model + processor from an existing causal LM (Hub id, local folder, GGUF or pkg://)."""

from __future__ import annotations

import logging

import torch
from tokenizers import AddedToken
from transformers import AutoModelForCausalLM, AutoTokenizer

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
    model = UnicornForConditionalGeneration.from_text_model(
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
