"""Read one config of a stage output as fixed-size shards of arrow rows, with memory that does not grow with the data.

A local folder is streamed straight from its parquet files (`pyarrow.parquet`, one row group at a time), not through
`load_dataset`: its parquet -> arrow cache conversion holds memory in proportion to the dataset (~190 MB more at
100k captions than at 10k), and its cache is keyed on the folder's name and card, so two folders with the same name
(two runs' `transfer/captions`) would share one cache entry. A Hub id goes through `load_dataset` (memory-mapped).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from datasets import Features

from unicorn_hf.utils.hub import load_dataset_folder


class ShardedSource:
    """Rows of one config, read in order as consecutive tables of `shard_size` rows (the last one shorter)."""

    def __init__(self, path_or_repo: str, config_name: str) -> None:
        self.name = f"{path_or_repo} (config {config_name})"
        folder = Path(path_or_repo)
        self._files: list[str] | None = None
        if folder.is_dir():
            files = sorted(str(file) for file in (folder / config_name).glob("train-*.parquet"))
            if not files:
                raise FileNotFoundError(f"{folder / config_name} holds no train-*.parquet (config {config_name!r})")
            self._files = files
            self.num_rows = sum(pq.ParquetFile(file).metadata.num_rows for file in files)
            self.features = Features.from_arrow_schema(pq.read_schema(files[0]))
            stamp = [(file, Path(file).stat().st_size, Path(file).stat().st_mtime_ns) for file in files]
            self.fingerprint = hashlib.sha256(repr(stamp).encode()).hexdigest()[:16]
        else:
            self._dataset = load_dataset_folder(path_or_repo, config_name)
            self.num_rows, self.features = len(self._dataset), self._dataset.features
            self.fingerprint = self._dataset._fingerprint

    @property
    def column_names(self) -> list[str]:
        return list(self.features)

    def __len__(self) -> int:
        return self.num_rows

    def shards(self, shard_size: int, columns: list[str] | None = None) -> Iterator[pa.Table]:
        """Consecutive tables of `shard_size` rows; row r is in shard r // shard_size, at r % shard_size."""
        if self._files is None:
            dataset = self._dataset if columns is None else self._dataset.select_columns(columns)
            yield from dataset.with_format("arrow").iter(batch_size=shard_size)
            return
        # Parquet row groups need not line up with shards: re-cut the ordered stream of record batches.
        batches = (
            batch
            for file in self._files
            for batch in pq.ParquetFile(file).iter_batches(batch_size=shard_size, columns=columns)
        )
        pending, rows = [], 0
        for batch in batches:
            pending.append(batch)
            rows += batch.num_rows
            while rows >= shard_size:
                table = pa.Table.from_batches(pending)
                yield table.slice(0, shard_size)
                rest = table.slice(shard_size)
                pending, rows = rest.to_batches(), rest.num_rows
        if rows:
            yield pa.Table.from_batches(pending)
