"""Stage 3, pass 1: encode every caption shard into the work folder's stash, then the statistics the transfer
method needs (the caption mean from the stash, an image mean of unlabeled images, ReAlign's, the memory).

The stash (`.transfer_work/captions-u-{i}.safetensors`: embeddings [n, D] float32, keep mask, float64 sum, drops)
is written shard by shard, atomically, and is the unit of resumption; the later passes read it back by caption row
(`unicorn_hf.transfer.writing.StashReader`). The stage as a whole: `unicorn_hf.transfer.pipeline`.
"""

from __future__ import annotations

import json
import logging
import math
import os
import zlib
from pathlib import Path

import torch
from datasets import Dataset, Features, Image, load_dataset
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from unicorn_hf.encoders import PairedEncoder
from unicorn_hf.transfer.config import TransferArguments
from unicorn_hf.transfer.method_statistics import build_memory, realign_statistics
from unicorn_hf.transfer.sources import ShardedSource
from unicorn_hf.transfer.statistics import TransferStatistics
from unicorn_hf.utils.assets import PACKAGED_SCHEME, packaged_images
from unicorn_hf.utils.drops import DropLog
from unicorn_hf.utils.paths import portable_record


logger = logging.getLogger(__name__)

WORK_DIR = ".transfer_work"


def atomic_path(path: Path) -> Path:
    """Temporary sibling of `path`; rename it onto `path` once complete so a killed run never leaves half a file."""
    return path.with_name(f".{path.name}.tmp")


def shard_count(num_rows: int, shard_size: int) -> int:
    return max(1, math.ceil(num_rows / shard_size))


def caption_key(caption: str) -> int:
    return zlib.crc32(caption.encode())  # compact stand-in for the caption text in the id map


def _encode_shard(encoder: PairedEncoder, ids: list[str], captions: list[str], duplicate: set[int], start: int):
    """Embeddings [n, D], keep mask [n], drops and truncation count of one caption shard."""
    drops = DropLog(stage="transfer", rows_in=len(ids))
    keep = torch.ones(len(ids), dtype=torch.bool)
    for row, (row_id, caption) in enumerate(zip(ids, captions, strict=True)):
        if start + row in duplicate:
            keep[row] = False
            drops.drop("duplicate_id", row_id)
        elif not isinstance(caption, str) or not caption.strip():
            keep[row] = False
            drops.drop("empty_caption", row_id)
    u = torch.zeros(len(ids), encoder.dim)  # [n, D]; dropped rows stay zero and never enter the mean
    texts = [captions[row] for row in keep.nonzero().flatten().tolist()]
    truncated = 0
    if texts:
        u[keep], truncated = encoder.encode_text_and_count(texts)
    finite = torch.isfinite(u).all(dim=-1)  # [n]; e.g. float16 overflow in the text tower
    for row in (keep & ~finite).nonzero().flatten().tolist():
        drops.drop("non_finite_embedding", ids[row])
    keep &= finite
    u[~keep] = 0.0
    return u, keep, drops, truncated


def encode_captions(
    encoder: PairedEncoder, captions: ShardedSource, shard_size: int, duplicate: set[int], work: Path
) -> tuple[torch.Tensor, int, DropLog, int | None]:
    """Pass 1 over every caption shard (finished shards are read back). Returns the float64 sum of the kept
    embeddings [D], the kept count, the drops and the number of truncated captions (None: not measurable)."""
    total = torch.zeros(encoder.dim, dtype=torch.float64)
    kept, truncated, drops = 0, 0, DropLog(stage="transfer")
    with tqdm(total=len(captions), desc="encode captions", unit="caption") as bar:
        for shard, rows in enumerate(captions.shards(shard_size, ["id", "caption"])):
            path = work / f"captions-u-{shard:05d}.safetensors"
            if not path.is_file():
                u, keep, shard_drops, shard_truncated = _encode_shard(
                    encoder,
                    rows.column("id").to_pylist(),
                    rows.column("caption").to_pylist(),
                    duplicate,
                    shard * shard_size,
                )
                metadata = {"drops": json.dumps(shard_drops.to_dict()), "truncated": json.dumps(shard_truncated)}
                tensors = {"u": u, "keep": keep, "sum": u[keep].double().sum(dim=0)}
                save_file(tensors, str(atomic_path(path)), metadata=metadata)
                os.replace(atomic_path(path), path)
            else:
                logger.debug("Caption shard %d already encoded (%s)", shard, path)
            tensors, metadata = load_file(str(path)), _read_metadata(path)
            total += tensors["sum"]
            kept += int(tensors["keep"].sum())
            drops.merge(DropLog.from_dict(json.loads(metadata["drops"])))
            shard_truncated = json.loads(metadata["truncated"])
            truncated = None if truncated is None or shard_truncated is None else truncated + shard_truncated
            bar.update(rows.num_rows)
    return total, kept, drops, truncated


def _read_metadata(path: Path) -> dict[str, str]:
    with safe_open(str(path), framework="pt") as handle:
        return handle.metadata()


def estimate_image_mean(
    encoder: PairedEncoder, source: str, column: str | None, max_images: int | None
) -> tuple[torch.Tensor, int]:
    """Mean [D] of the L2-normalised image embeddings of unlabeled images: an image folder (`imagefolder`), a
    dataset folder / Hub id with the images in `column`, or a packaged set (`pkg://unscored-photographs`)."""
    if source.startswith(PACKAGED_SCHEME):
        if column is not None:
            raise ValueError(f"image_mean_source {source!r} is a packaged image set; it takes no image_mean_column")
        column = "image"
        images = Dataset.from_dict({column: packaged_images(source)}, features=Features({column: Image()}))
    elif column is None:
        if not Path(source).is_dir():
            raise ValueError(f"image_mean_source {source!r} is not a folder; name the image column of a dataset")
        images, column = load_dataset("imagefolder", data_dir=source, split="train"), "image"
    else:
        images = load_dataset(source, split="train")
    if column not in images.column_names:
        raise ValueError(f"image_mean_source {source!r} has no column {column!r} (has {images.column_names})")
    if max_images is not None:
        images = images.select(range(min(max_images, len(images))))
    if len(images) == 0:
        raise ValueError(f"image_mean_source {source!r} holds no images")
    images = images.select_columns([column])
    total, count = torch.zeros(encoder.dim, dtype=torch.float64), 0
    step = encoder.batch_size or len(images)
    for batch in tqdm(images.iter(batch_size=step), total=math.ceil(len(images) / step), desc="encode images"):
        w = encoder.encode_image(batch[column])  # [B, D]
        finite = torch.isfinite(w).all(dim=-1)
        if not finite.all():
            logger.warning("Skipping %d image(s) with non-finite embeddings in %s", int((~finite).sum()), source)
        total += w[finite].double().sum(dim=0)
        count += int(finite.sum())
    if count == 0:
        raise ValueError(f"no finite image embedding in {source!r}")
    logger.info("image_mean from %d image(s) of %s", count, source)
    return (total / count).float(), count


def compute_statistics(
    encoder: PairedEncoder, args: TransferArguments, work: Path, text_mean: torch.Tensor, num_kept: int
) -> TransferStatistics:
    """Everything the configured method needs, from the stash of pass 1: the image mean of unlabeled images,
    ReAlign's scale and mu_hat (whenever an image mean is known, so that the diagnostics can show ReAlign too), the
    memory. `text_mean` [D] is the kept captions' mean."""
    image_mean, num_images, scale, realign_mean, memory = None, None, None, None, None
    if args.image_mean_source is not None:
        image_mean, num_images = estimate_image_mean(
            encoder, args.image_mean_source, args.image_mean_column, args.image_mean_max_images
        )
        scale, realign_mean = realign_statistics(work, text_mean, image_mean)
    if args.memory_size is not None:
        memory = build_memory(encoder, args.memory_source, work, num_kept, args.memory_size, args.seed)
        logger.info("memory of %d text embeddings from %s", len(memory), args.memory_source)
    return TransferStatistics(
        encoder_id=encoder.id,
        encoder=encoder.spec.to_dict(),
        dim=encoder.dim,
        text_mean=text_mean,
        num_rows=num_kept,
        normalized_input=True,  # every PairedEncoder returns L2-normalised embeddings
        settings=args.settings(0 if memory is None else len(memory)),
        image_mean=image_mean,
        num_images=num_images,
        realign_mean=realign_mean,
        realign_scale=scale,
        memory=memory,
        memory_source=None if memory is None else portable_record(args.memory_source, args.output_dir),
    )
