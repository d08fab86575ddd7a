"""What a transfer method needs beyond the caption mean, computed from the stage's stash of caption embeddings.

- ReAlign: the scale s and mu_hat (`unicorn_hf.modeling.modality_transfer.realign_scale` / `realign_first_step`);
- the memory of memory projection (DeCap): a seeded subsample of unit-norm text embeddings, of this stage's captions
  or of a text file.

The stash is pass 1's `captions-u-{i}.safetensors` files (embeddings [n, D] and a keep mask each); these functions
read one shard at a time, so memory stays bounded by a shard plus the result.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import torch
from safetensors.torch import load_file

from unicorn_hf.encoders import PairedEncoder
from unicorn_hf.modeling.modality_transfer import realign_first_step, realign_scale
from unicorn_hf.transfer.config import CAPTIONS_MEMORY


logger = logging.getLogger(__name__)


def kept_caption_embeddings(work: Path) -> Iterator[torch.Tensor]:
    """The kept rows of each stash shard, in order: [n_i, D] float32 each."""
    for path in sorted(work.glob("captions-u-*.safetensors")):
        stash = load_file(str(path))
        yield stash["u"][stash["keep"]]


def realign_statistics(work: Path, text_mean: torch.Tensor, image_mean: torch.Tensor) -> tuple[float, torch.Tensor]:
    """ReAlign's s and mu_hat [D]: the mean over the kept captions of n(s (n(u) - mu_T) + mu_I) (embed_ReAlign.py,
    pass 3)."""
    scale = realign_scale(text_mean, image_mean)
    total, count = torch.zeros(text_mean.shape[-1], dtype=torch.float64), 0
    for u in kept_caption_embeddings(work):
        total += realign_first_step(u, text_mean, image_mean, scale).double().sum(0)
        count += len(u)
    logger.info("ReAlign: scale %.4f over %d captions", scale, count)
    return scale, (total / count).float()


def _subsample(num_rows: int, size: int, seed: int) -> torch.Tensor:
    """Sorted indices of `size` of `num_rows` rows (all when there are fewer), drawn with `seed`."""
    if size >= num_rows:
        return torch.arange(num_rows)
    generator = torch.Generator().manual_seed(seed)
    return torch.randperm(num_rows, generator=generator)[:size].sort().values


def caption_memory(work: Path, num_kept: int, size: int, seed: int) -> torch.Tensor:
    """[min(size, num_kept), D] unit-norm embeddings of a seeded subsample of this stage's kept captions."""
    chosen = _subsample(num_kept, size, seed)
    rows, start = [], 0
    for u in kept_caption_embeddings(work):
        local = chosen[(chosen >= start) & (chosen < start + len(u))] - start
        rows.append(u[local])
        start += len(u)
    return torch.nn.functional.normalize(torch.cat(rows).float(), dim=-1)


def text_file_memory(encoder: PairedEncoder, path: str | Path, size: int, seed: int) -> torch.Tensor:
    """[min(size, lines), D] unit-norm embeddings of a seeded subsample of a text file's non-empty lines.

    Raises:
        ValueError: the file does not exist or holds no text.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"memory_source {str(path)!r} is neither {CAPTIONS_MEMORY!r} nor a text file")
    texts = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not texts:
        raise ValueError(f"memory_source {str(path)!r} holds no text (one text per line expected)")
    chosen = _subsample(len(texts), size, seed).tolist()
    return torch.nn.functional.normalize(encoder.encode_text([texts[i] for i in chosen]).float(), dim=-1)


def build_memory(encoder: PairedEncoder, source: str, work: Path, num_kept: int, size: int, seed: int) -> torch.Tensor:
    """The memory named by `memory_source`: this stage's captions, or a text file."""
    if source == CAPTIONS_MEMORY:
        memory = caption_memory(work, num_kept, size, seed)
    else:
        memory = text_file_memory(encoder, source, size, seed)
    if len(memory) < size:
        logger.warning("memory_source %s holds %d texts, fewer than memory_size=%d: all are used", source, len(memory),
                       size)  # fmt: skip
    return memory
