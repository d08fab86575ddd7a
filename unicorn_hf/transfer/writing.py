"""Stage 3, passes 2 and 3: write each caption shard with its transferred embedding (`image_embeds`, float16), then
each instruction shard, joined to its caption by `id` and reusing that caption's embedding; rows whose caption is
missing or differs are dropped with a reason. Shards are staged in the work folder and published into the
Hub-ready folder when every one is written. The stage as a whole: `unicorn_hf.transfer.pipeline`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from datasets import Features, List, Value
from safetensors.torch import load_file
from tqdm.auto import tqdm

from unicorn_hf.data_contract import IMAGE_EMBEDS
from unicorn_hf.transfer.config import TransferArguments
from unicorn_hf.transfer.encoding import atomic_path, caption_key, shard_count
from unicorn_hf.transfer.sources import ShardedSource
from unicorn_hf.transfer.statistics import TransferStatistics
from unicorn_hf.utils.drops import DropLog


logger = logging.getLogger(__name__)

_SHARD = "{split}-{index:05d}-of-{total:05d}.parquet"  # the layout of `unicorn_hf.utils.hub.write_dataset_config`


class StashReader:
    """Embeddings of pass 1 by global caption row, one stash shard in memory at a time."""

    def __init__(self, work: Path, shard_size: int) -> None:
        self.work, self.shard_size = work, shard_size
        self._shard, self._u = -1, torch.empty(0)

    def rows(self, rows: list[int]) -> torch.Tensor:
        out = []
        for row in rows:
            shard = row // self.shard_size
            if shard != self._shard:
                self._shard, self._u = shard, load_file(str(self.work / f"captions-u-{shard:05d}.safetensors"))["u"]
            out.append(self._u[row % self.shard_size])
        return torch.stack(out) if out else torch.empty(0, self._u.shape[-1] if self._u.numel() else 0)


def _embed(stats: TransferStatistics, u: torch.Tensor) -> np.ndarray:
    # The text side without noise: the noise methods (CapDec, C3) draw theirs afresh in every training step.
    return stats.embed_text(u).to(torch.float16).numpy()  # [n, D]


def _staged(work: Path, config_name: str, shard: int) -> Path:
    return work / config_name / f"shard-{shard:05d}.parquet"


def _write_shard(table: pa.Table, embeds: np.ndarray, features: Features, path: Path) -> None:
    """Write one staged shard atomically; a shard whose rows were all dropped leaves an `.empty` marker instead
    (a zero-row parquet file cannot be read back by `datasets`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if table.num_rows == 0:
        path.with_suffix(".empty").touch()
        return
    column = pa.FixedSizeListArray.from_arrays(pa.array(embeds.reshape(-1), type=pa.float16()), embeds.shape[-1])
    table = table.append_column(IMAGE_EMBEDS, column).select(list(features))
    pq.write_table(table.cast(features.arrow_schema), str(atomic_path(path)))
    os.replace(atomic_path(path), path)


def _is_staged(path: Path) -> bool:
    return path.is_file() or path.with_suffix(".empty").is_file()


def publish(work: Path, out: Path, config_name: str) -> list[Path]:
    """Move the staged non-empty shards of a config to `out/<config>/train-{i}-of-{n}.parquet` (renames only)."""
    staged = sorted((work / config_name).glob("shard-*.parquet"))
    target = out / config_name
    target.mkdir(parents=True, exist_ok=True)
    for stale in target.glob("train-*.parquet"):
        stale.unlink()
    paths = [target / _SHARD.format(split="train", index=i, total=len(staged)) for i in range(len(staged))]
    for source, path in zip(staged, paths, strict=True):
        os.replace(source, path)
    return paths


def _output_features(source: ShardedSource, dim: int) -> Features:
    features = source.features.copy()
    features[IMAGE_EMBEDS] = List(Value("float16"), length=dim)
    return features


def write_captions(captions: ShardedSource, args: TransferArguments, stats: TransferStatistics, work: Path) -> None:
    """Pass 2: stage every caption shard with its kept rows and their `image_embeds`."""
    features, num_shards = _output_features(captions, stats.dim), shard_count(len(captions), args.shard_size)
    shards = captions.shards(args.shard_size)
    for shard, table in tqdm(enumerate(shards), total=num_shards, desc="write captions", unit="shard"):
        path = _staged(work, args.captions_config, shard)
        if _is_staged(path):
            continue
        stash = load_file(str(work / f"captions-u-{shard:05d}.safetensors"))
        keep = stash["keep"]
        table = table.filter(pa.array(keep.numpy()))
        _write_shard(table, _embed(stats, stash["u"][keep]), features, path)


def caption_index(captions: ShardedSource, shard_size: int, work: Path) -> dict[str, tuple[int, int]]:
    """id -> (caption row, crc32 of the caption) over the kept captions: the hash map of the instruction join."""
    index = {}
    for shard, rows in enumerate(captions.shards(shard_size, ["id", "caption"])):
        start = shard * shard_size
        keep = load_file(str(work / f"captions-u-{shard:05d}.safetensors"))["keep"].tolist()
        ids, texts = rows.column("id").to_pylist(), rows.column("caption").to_pylist()
        for offset, (row_id, caption, kept) in enumerate(zip(ids, texts, keep, strict=True)):
            if kept:
                index[row_id] = (start + offset, caption_key(caption))
    return index


def write_instructions(
    instructions: ShardedSource, args: TransferArguments, stats: TransferStatistics, work: Path, index: dict
) -> DropLog:
    """Pass 3: stage every instruction shard, each row with the embedding of the caption it was made from."""
    features, num_shards = _output_features(instructions, stats.dim), shard_count(len(instructions), args.shard_size)
    stash, drops = StashReader(work, args.shard_size), DropLog("transfer")
    shards = instructions.shards(args.shard_size)
    for shard, table in tqdm(enumerate(shards), total=num_shards, desc="write instructions", unit="shard"):
        path = _staged(work, args.instructions_config, shard)
        drops_path = work / f"instructions-drops-{shard:05d}.json"
        if _is_staged(path) and drops_path.is_file():
            drops.merge(DropLog.load(drops_path))
            continue
        shard_drops, keep, rows = DropLog("transfer", rows_in=table.num_rows), [], []
        for row_id, caption in zip(table.column("id").to_pylist(), table.column("caption").to_pylist(), strict=True):
            kept = False
            entry = index.get(row_id)  # O(1) join, never a scan of the captions
            if entry is None:
                shard_drops.drop("caption_id_missing", row_id)
            elif not isinstance(caption, str) or caption_key(caption) != entry[1]:
                shard_drops.drop("caption_mismatch", row_id)
            else:
                rows.append(entry[0])
                kept = True
            keep.append(kept)
        keep_mask = pa.array(keep, type=pa.bool_())
        u = stash.rows(rows) if rows else torch.empty(0, stats.dim)
        shard_drops.save(atomic_path(drops_path))
        os.replace(atomic_path(drops_path), drops_path)
        _write_shard(table.filter(keep_mask), _embed(stats, u), features, path)
        drops.merge(shard_drops)
    return drops
