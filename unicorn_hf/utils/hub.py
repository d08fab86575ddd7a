"""Hub-ready folders: write locally in the exact layout the Hub expects, push the same bytes when asked.

A dataset folder holds one sub-folder of parquet shards per config plus a README.md whose YAML front matter
declares the configs, so `datasets.load_dataset(folder, config)` works offline and `push_dataset_folder` publishes
the same files with `HfApi.upload_folder`.

    outputs/tiny/captions/
        README.md                      # card, YAML `configs:` -> captions/train-*.parquet
        captions/train-00000-of-00001.parquet
        drops.json, ...                # stage extras (statistics, prompts, pipeline.yaml)
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import yaml
from datasets import Dataset, DatasetInfo, Features, SplitDict, SplitInfo, load_dataset
from datasets.exceptions import DatasetGenerationError
from huggingface_hub import HfApi

from unicorn_hf.data_contract import FIXED_WIDTH_COLUMNS


logger = logging.getLogger(__name__)

_SHARD_NAME = "{split}-{index:05d}-of-{total:05d}.parquet"
CARD_NAME = "README.md"  # written last by every stage: its presence marks a finished folder


def configs_metadata(config_names: list[str], default: str | None = None, split: str = "train") -> list[dict]:
    """The `configs:` block of a dataset card for folders laid out by `write_dataset_config`."""
    default = default or config_names[0]
    return [
        {
            "config_name": name,
            "data_files": [{"split": split, "path": f"{name}/{split}-*.parquet"}],
            **({"default": True} if name == default else {}),
        }
        for name in config_names
    ]


def write_dataset_config(
    dataset: Dataset, folder: str | Path, config_name: str, split: str = "train", max_shard_rows: int | None = None
) -> list[Path]:
    """Write `dataset` as parquet shards under `folder/config_name/`, replacing any earlier shards of that split."""
    config_dir = Path(folder) / config_name
    config_dir.mkdir(parents=True, exist_ok=True)
    for stale in config_dir.glob(f"{split}-*.parquet"):
        stale.unlink()
    total = max(1, math.ceil(len(dataset) / max_shard_rows)) if max_shard_rows else 1
    paths = []
    for index in range(total):
        shard = dataset.shard(num_shards=total, index=index, contiguous=True) if total > 1 else dataset
        path = config_dir / _SHARD_NAME.format(split=split, index=index, total=total)
        shard.to_parquet(str(path))
        paths.append(path)
    logger.info("Wrote %d rows of config %r to %s (%d shard(s))", len(dataset), config_name, config_dir, total)
    return paths


def dataset_info_metadata(folder: str | Path, configs: list[dict]) -> list[dict]:
    """The card's `dataset_info:` block (features, rows and bytes per split) read from the parquet shards on disk.

    Besides documenting the folder as `push_to_hub` would, it keys `datasets`' cache: a local folder loaded by name
    is cached under its base name and a hash of the card metadata, so without sizes in the card a rewritten
    folder, or another folder of the same name, returns the rows of the first one loaded.
    """
    infos = []
    for config in configs:
        splits, features, download_size = {}, None, 0
        for data_files in config.get("data_files", []):
            shards = sorted(Path(folder).glob(data_files["path"]))
            if not shards:
                continue
            metadata = [pq.read_metadata(shard) for shard in shards]
            features = features or Features.from_arrow_schema(pq.read_schema(shards[0]))
            num_bytes = sum(meta.row_group(i).total_byte_size for meta in metadata for i in range(meta.num_row_groups))
            splits[data_files["split"]] = SplitInfo(
                name=data_files["split"], num_bytes=num_bytes, num_examples=sum(meta.num_rows for meta in metadata)
            )
            download_size += sum(shard.stat().st_size for shard in shards)
        if splits:
            info = DatasetInfo(
                features=features, splits=SplitDict(splits), download_size=download_size,
                dataset_size=sum(split.num_bytes for split in splits.values()),
            )  # fmt: skip
            infos.append({"config_name": config["config_name"], **info._to_yaml_dict()})
    return infos


def write_card(folder: str | Path, metadata: Mapping, body: str) -> Path:
    """Write README.md with YAML front matter (`metadata`) and a markdown body. A `configs:` block gets its
    `dataset_info:` from the shards already written (see `dataset_info_metadata`)."""
    metadata = dict(metadata)
    if metadata.get("configs") and "dataset_info" not in metadata:
        metadata["dataset_info"] = dataset_info_metadata(folder, metadata["configs"])
    front = yaml.safe_dump(metadata, sort_keys=False, allow_unicode=True)
    path = Path(folder) / CARD_NAME
    path.write_text(f"---\n{front}---\n\n{body.strip()}\n")
    return path


def load_dataset_folder(path_or_repo: str | Path, config_name: str, split: str = "train") -> Dataset:
    """Load one config of a stage output, from a local folder or a Hub repo id.

    A local folder is read through its parquet shards by absolute path: `datasets` caches a folder loaded by name
    (`load_dataset(folder, config)`) under the folder's base name, so a rewritten folder, or another folder with the
    same name, could return stale rows. The parquet builder keys its cache on the files themselves.

    Every stage writes its card (README.md) last, so a local folder without one is the output of a stage that has
    not finished (interrupted, or still running) and is refused rather than read half-written.
    """
    local = Path(path_or_repo)
    if not local.is_dir():
        return load_dataset(str(path_or_repo), config_name, split=split)
    if not (local / CARD_NAME).is_file():
        raise FileNotFoundError(
            f"{local} has no {CARD_NAME}: the stage that writes this folder did not finish (it writes its card "
            "last). Run that stage again; it resumes where it stopped."
        )
    shards = sorted((local / config_name).glob(f"{split}-*.parquet"))
    if not shards:
        raise FileNotFoundError(
            f"{local} has no {config_name}/{split}-*.parquet shards: is it the output folder of the stage that "
            f"writes config {config_name!r}?"
        )
    try:
        dataset = load_dataset("parquet", data_files={split: [str(p.resolve()) for p in shards]}, split=split)
    except (DatasetGenerationError, pa.ArrowException, TypeError, ValueError) as error:
        # `datasets` reports shards it cannot cast to one schema without naming them: name the file and the field.
        if problem := shard_schema_mismatch(shards):
            raise ValueError(problem) from error
        raise
    check_list_widths(dataset, shards)
    return dataset


def shard_schema_mismatch(shards: list[Path]) -> str | None:
    """A message naming the first shard whose schema differs from the first shard's (the file, the field, both
    types, and for a fixed-width column the first row of another length), or None when all agree."""
    reference = pq.read_schema(shards[0])
    for shard in shards[1:]:
        schema = pq.read_schema(shard)
        if schema.names != reference.names:
            return (
                f"{shard}: columns {schema.names}, but {shards[0]} has {reference.names}; the shards of one config "
                "must share one schema (were they written by different runs? write the config again)."
            )
        for field in schema:
            expected = reference.field(field.name).type
            if field.type == expected:
                continue
            message = (
                f"{shard}: field {field.name!r} is {field.type}, but {shards[0]} has {expected}; the shards of one "
                "config must share one schema (were they written by different runs? write the config again)."
            )
            if field.name in FIXED_WIDTH_COLUMNS:
                message += _width_note(shards[0], shard, field.name)
            return message
    return None


def _width_note(reference: Path, shard: Path, column: str) -> str:
    """ " Row i (id ...) of <shard> has n values, expected w." for the first row of `shard` whose list in `column`
    is not as long as the first row of `reference`; "" when there is none."""
    width = _first_width(reference, column)
    row = None if width is None else _first_other_width(shard, column, width)
    if row is None:
        return ""
    index, row_id, length = row
    return f" Row {index} (id {row_id!r}) of {shard.name} has {length} values, expected {width}."


def _list_lengths(column: pa.ChunkedArray) -> list[int]:
    """Lengths of a list column, -1 for a missing list."""
    return pc.fill_null(pc.list_value_length(column), -1).to_pylist()


def _first_width(shard: Path, column: str) -> int | None:
    lengths = _list_lengths(pq.read_table(shard, columns=[column]).column(column))
    return lengths[0] if lengths else None


def _first_other_width(shard: Path, column: str, width: int) -> tuple[int, str, int] | None:
    """(row index in `shard`, its id, its length) of the first row of `column` that is not `width` long."""
    names = pq.read_schema(shard).names
    table = pq.read_table(shard, columns=[column, *(["id"] if "id" in names else [])])
    for index, length in enumerate(_list_lengths(table.column(column))):
        if length != width:
            row_id = table.column("id")[index].as_py() if "id" in names else index
            return index, str(row_id), length
    return None


def check_list_widths(dataset: Dataset, shards: list[Path], columns: tuple[str, ...] = FIXED_WIDTH_COLUMNS) -> None:
    """Every row of each fixed-width list column holds as many values as the first row; the first row that does
    not is reported with its shard file, its row in that file, its id and the field. Reads only the list offsets of
    the loaded table, so it costs nothing next to the load."""
    for column in columns:
        if column not in dataset.column_names:
            continue
        values = dataset.data.column(column)
        if pa.types.is_fixed_size_list(values.type):
            continue  # one length by type
        lengths = _list_lengths(values)
        width = lengths[0] if lengths else None
        bad = [index for index, length in enumerate(lengths) if length != width]
        if not bad:
            continue
        rows = [pq.ParquetFile(shard).metadata.num_rows for shard in shards]
        index, start = bad[0], 0
        shard_index = 0
        while shard_index < len(rows) - 1 and index >= start + rows[shard_index]:
            start += rows[shard_index]
            shard_index += 1
        row_id = dataset.data.column("id")[index].as_py() if "id" in dataset.column_names else index
        raise ValueError(
            f"{shards[shard_index]}: row {index - start} (id {row_id!r}): field {column!r} has {lengths[index]} "
            f"values, expected {width} (as row 0 of {shards[0].name}); {len(bad)} row(s) of this config differ. "
            f"Every row must hold one vector of the same length: re-run the stage that wrote it."
        )


def push_folder(folder: str | Path, repo_id: str, repo_type: str, private: bool | None = None, **kwargs) -> str:
    """Publish a folder written by this package as-is; returns the commit URL."""
    api = HfApi()
    api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True)
    info = api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type=repo_type, **kwargs)
    logger.info("Pushed %s to the Hub: %s", folder, info)
    return str(info)
