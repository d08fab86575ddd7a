"""`PairedEncoder`: a text tower and an image tower that embed into one space, batched, as every stage uses them."""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F

from unicorn_hf.encoders.spec import EncoderSpec


logger = logging.getLogger(__name__)


def resolve_dtype(dtype: str | torch.dtype) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    resolved = getattr(torch, dtype, None)
    if not isinstance(resolved, torch.dtype) or not resolved.is_floating_point:
        raise ValueError(f"dtype {dtype!r} is not a torch floating point type (float32, float16, bfloat16)")
    return resolved


class PairedEncoder(ABC):
    """A text tower and an image tower that embed into one D-dimensional space.

    Subclasses implement the per-batch forward passes; this class owns batching, `torch.inference_mode`, the
    input checks and the L2 normalisation, so every backend returns the same thing.
    """

    spec: EncoderSpec
    dim: int
    context_length: int | None  # text tokens the text tower sees; longer captions are truncated
    local_path: Path | None = None  # the folder / weights file loaded on this machine (never stored by a stage)

    @property
    def id(self) -> str:
        return self.spec.id

    sort_by_length: bool = False  # True where batches are padded dynamically, so sorting saves compute

    def __init__(self, device: str | torch.device, dtype: str | torch.dtype, batch_size: int | None) -> None:
        self.device = torch.device(device)
        self.dtype = resolve_dtype(dtype)
        self.batch_size = batch_size  # None: everything in one forward pass

    def __repr__(self) -> str:
        return f"{type(self).__name__}(id={self.id!r}, dim={self.dim}, device={self.device}, dtype={self.dtype})"

    @abstractmethod
    def _encode_text_batch(self, texts: list[str]) -> tuple[torch.Tensor, int | None]:
        """Unnormalised text features [B, D] of one batch, and how many of its texts were truncated (None: unknown)."""

    @abstractmethod
    def _encode_image_batch(self, images: list) -> torch.Tensor:
        """Unnormalised image features [B, D] for one batch of PIL images."""

    def text_token_counts(self, texts: Sequence[str]) -> list[int] | None:
        """Tokens per caption before truncation (special tokens included); None where the tokenizer cannot say."""
        return None

    def count_truncated(self, texts: Sequence[str]) -> int | None:
        """How many of `texts` are longer than the text tower's context (and therefore truncated)."""
        counts = self.text_token_counts(texts)
        if counts is None or self.context_length is None:
            return None
        return sum(count > self.context_length for count in counts)

    def encode_text(self, texts: Sequence[str]) -> torch.Tensor:
        """L2-normalised text embeddings [N, D] float32 on the CPU, in the order of `texts`."""
        return self.encode_text_and_count(texts)[0]

    def encode_text_and_count(self, texts: Sequence[str]) -> tuple[torch.Tensor, int | None]:
        """`encode_text` plus the number of texts truncated to the context, counted from the same tokenization."""
        for index, text in enumerate(texts):
            if not isinstance(text, str) or not text.strip():
                raise ValueError(f"text {index} is empty or not a string ({text!r}); drop it before encoding")
        order = sorted(range(len(texts)), key=lambda i: len(texts[i])) if self.sort_by_length else None
        truncated: list[int | None] = []

        def forward(batch: list[str]) -> torch.Tensor:
            features, batch_truncated = self._encode_text_batch(batch)
            truncated.append(batch_truncated)
            return features

        u = self._batched(list(texts), forward, order)
        return u, None if None in truncated else sum(truncated)

    def encode_image(self, images: Sequence) -> torch.Tensor:
        """L2-normalised image embeddings [N, D] float32 on the CPU, in the order of `images`."""
        return self._batched([image.convert("RGB") for image in images], self._encode_image_batch, None)

    def _batched(self, items: list, forward, order: list[int] | None) -> torch.Tensor:
        order = order if order is not None else list(range(len(items)))
        out = torch.empty(len(items), self.dim, dtype=torch.float32)  # [N, D]
        step = self.batch_size or max(1, len(items))
        with torch.inference_mode():
            for start in range(0, len(order), step):
                index = order[start : start + step]
                features = forward([items[i] for i in index])  # [B, D]
                if features.shape != (len(index), self.dim):
                    expected = (len(index), self.dim)
                    raise RuntimeError(f"{self.id} returned {tuple(features.shape)}, expected {expected}")
                out[index] = features.float().cpu()
        # A NaN row stays NaN (callers drop it with a reason); a zero row stays zero instead of dividing by 0.
        return F.normalize(out, dim=-1)


def pooled_features(output) -> torch.Tensor:
    """The [B, D] features of a transformers `get_text_features` / `get_image_features` call."""
    # transformers returns a tensor or (v5) a model output whose pooled, projected features are `pooler_output`.
    return output if isinstance(output, torch.Tensor) else output.pooler_output
