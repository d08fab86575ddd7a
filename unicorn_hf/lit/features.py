"""Features of the locked towers, computed once and cached: the LiT trick that makes CPU training cheap.

Both towers are frozen, so the pooled trunk features never change during training; only the projections see
gradients. Each pair is pushed through the towers once and the recipe then trains for many epochs on tensors.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
from open_clip.model import CustomTextCLIP
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from unicorn_hf.lit.pairs import Pair, UnreadableImageError, check_caption
from unicorn_hf.utils.drops import DropLog


logger = logging.getLogger(__name__)


@torch.no_grad()
def image_features(model: CustomTextCLIP, pixels: torch.Tensor) -> torch.Tensor:
    # channels_last: ~1.5x faster depthwise convolutions on CPU, identical numbers.
    return model.visual.trunk(pixels.contiguous(memory_format=torch.channels_last))  # [B, C] pooled, before the head


@torch.no_grad()
def text_features(model: CustomTextCLIP, tokens: torch.Tensor) -> torch.Tensor:
    # Same masking and pooling as open_clip's HFTextEncoder.forward, stopping before the trained projection.
    attention_mask = (tokens != model.text.config.pad_token_id).long()  # [B, T]
    output = model.text.transformer(input_ids=tokens, attention_mask=attention_mask)
    return model.text.pooler(output, attention_mask)  # [B, H]


def embed_image_features(model: CustomTextCLIP, features: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.normalize(model.visual.head(features), dim=-1)  # [B, D]


def embed_text_features(model: CustomTextCLIP, features: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.normalize(model.text.proj(features), dim=-1)  # [B, D]


def compute_features(
    model: CustomTextCLIP, preprocess, tokenizer, pairs: list[Pair], batch_size: int, drops: DropLog, desc: str
) -> tuple[list[str], torch.Tensor, torch.Tensor]:
    """(kept ids, image features [N, C], text features [N, H]); unreadable images are dropped and recorded."""
    ids, image_chunks, text_chunks = [], [], []
    for start in tqdm(range(0, len(pairs), batch_size), desc=desc, unit="batch"):
        batch_ids, pixels, captions = [], [], []
        for pair in pairs[start : start + batch_size]:
            caption = check_caption(pair.caption, pair.id)
            try:
                image = pair.load()
            except UnreadableImageError as error:
                logger.warning("Dropping %s: %s", pair.id, error)
                drops.drop("unreadable_image", pair.id)
                continue
            batch_ids.append(pair.id)
            pixels.append(preprocess(image))  # [3, S, S]
            captions.append(caption)
        if not batch_ids:
            continue
        ids.extend(batch_ids)
        image_chunks.append(image_features(model, torch.stack(pixels)))
        text_chunks.append(text_features(model, tokenizer(captions)))
    if not ids:
        raise ValueError(f"No readable pair left for {desc}")
    return ids, torch.cat(image_chunks), torch.cat(text_chunks)


def cached_features(
    cache_file: Path,
    fingerprint: str,
    model: CustomTextCLIP,
    preprocess,
    tokenizer,
    pairs: list[Pair],
    batch_size: int,
    drops: DropLog,
    desc: str,
) -> tuple[list[str], torch.Tensor, torch.Tensor]:
    """`compute_features`, reused from `cache_file` when it was computed for exactly these pairs and captions by the
    same towers and preprocessing (`fingerprint`, e.g. the model arguments as JSON)."""
    key = [fingerprint, [[pair.id, pair.caption] for pair in pairs]]
    meta_file = cache_file.with_suffix(".json")
    if cache_file.is_file() and meta_file.is_file():
        meta = json.loads(meta_file.read_text())
        if meta["pairs"] == key:
            logger.info("Reusing cached tower features %s", cache_file)
            for reason, pair_ids in meta["dropped"].items():
                for pair_id in pair_ids:
                    drops.drop(reason, pair_id)
            tensors = load_file(str(cache_file))
            return meta["ids"], tensors["image"], tensors["text"]
    local = DropLog(stage=drops.stage, max_examples=len(pairs))
    ids, images, texts = compute_features(model, preprocess, tokenizer, pairs, batch_size, local, desc)
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    save_file({"image": images.contiguous(), "text": texts.contiguous()}, str(cache_file))
    meta_file.write_text(json.dumps({"pairs": key, "ids": ids, "dropped": local.examples}))
    drops.merge(DropLog(stage=drops.stage, dropped=local.dropped, examples=local.examples))
    return ids, images, texts
