"""Stage 3: embed every caption, move it by the text side of the modality transfer rule, store it as `image_embeds`.

The rule (`unicorn_hf.modeling.modality_transfer`: the paper's mean shift, CapDec, C3, ReAlign, DeCap's memory
projection) needs statistics of every caption before any row can be written, so the stage runs in passes over fixed
shards of `shard_size` rows; each shard's file is written atomically (temporary name + rename) and is the unit of
resumption:

1. encode: caption shard i -> `.transfer_work/captions-u-{i}.safetensors` (embeddings [n, D] float32, keep mask,
   float64 sum, drops). The caption mean is the sum of the shard sums over the kept count, so a resumed run gets the
   bit-identical mean. Then what the method needs besides: an image mean of unlabeled images, ReAlign's scale and
   mu_hat (one more pass over the stash), a seeded subsample of caption embeddings as the memory.
2. write captions: shard i + `image_embeds` (float16) -> `captions/train-{i}-of-{n}.parquet`.
3. write instructions: each row joins its caption by `id` through a hash map (id -> caption row) and reuses that
   caption's embedding; rows whose caption is missing or differs are dropped with a reason.

Memory is bounded by one shard plus the id map. The work folder is removed when the stage has finished; the
arguments of the run are kept in `transfer_run.json` and must match for a resume or a rerun, and the encoder id
must match any statistics already in `output_dir` (embeddings of two encoders are never mixed). The id is path-free
(a local encoder is named by its content fingerprint), so a second clone holding the same encoder continues the run.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import zlib
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from datasets import Dataset, Features, Image, List, Value, load_dataset
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from unicorn_hf.data_contract import CAPTIONS_COLUMNS, IMAGE_EMBEDS, INSTRUCTIONS_COLUMNS
from unicorn_hf.encoders import PairedEncoder, load_encoder
from unicorn_hf.transfer.card import write_transfer_card
from unicorn_hf.transfer.config import EncoderArguments, TransferArguments
from unicorn_hf.transfer.diagnostics import modality_gap_report
from unicorn_hf.transfer.method_statistics import build_memory, realign_statistics
from unicorn_hf.transfer.sources import ShardedSource
from unicorn_hf.transfer.statistics import TransferStatistics
from unicorn_hf.utils.assets import PACKAGED_SCHEME, packaged_images
from unicorn_hf.utils.drops import DROPS_FILE, DropLog
from unicorn_hf.utils.paths import portable_record


logger = logging.getLogger(__name__)

WORK_DIR = ".transfer_work"
RUN_FILE = "transfer_run.json"
_SHARD = "{split}-{index:05d}-of-{total:05d}.parquet"  # the layout of `unicorn_hf.utils.hub.write_dataset_config`


# --- small helpers ---------------------------------------------------------------------------------------------


def _atomic(path: Path) -> Path:
    """Temporary sibling of `path`; rename it onto `path` once complete so a killed run never leaves half a file."""
    return path.with_name(f".{path.name}.tmp")


def _check_columns(source: ShardedSource, expected: tuple[str, ...]) -> None:
    missing = [name for name in expected if name not in source.column_names]
    if missing:
        raise ValueError(f"{source.name}: columns {missing} are missing (has {source.column_names})")
    if IMAGE_EMBEDS in source.column_names:
        raise ValueError(f"{source.name} already has `{IMAGE_EMBEDS}`: point the transfer at stage-1/2 output")
    if len(source) == 0:
        raise ValueError(f"{source.name} has no rows")


def _num_shards(num_rows: int, shard_size: int) -> int:
    return max(1, math.ceil(num_rows / shard_size))


def _caption_key(caption: str) -> int:
    return zlib.crc32(caption.encode())  # compact stand-in for the caption text in the id map


# --- pass 1: encode ----------------------------------------------------------------------------------------------


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
                save_file(tensors, str(_atomic(path)), metadata=metadata)
                os.replace(_atomic(path), path)
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


# --- image mean --------------------------------------------------------------------------------------------------


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


def method_statistics(
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


# --- passes 2 and 3: write -----------------------------------------------------------------------------------------


class _StashReader:
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
    pq.write_table(table.cast(features.arrow_schema), str(_atomic(path)))
    os.replace(_atomic(path), path)


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
    features, num_shards = _output_features(captions, stats.dim), _num_shards(len(captions), args.shard_size)
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
                index[row_id] = (start + offset, _caption_key(caption))
    return index


def write_instructions(
    instructions: ShardedSource, args: TransferArguments, stats: TransferStatistics, work: Path, index: dict
) -> DropLog:
    """Pass 3: stage every instruction shard, each row with the embedding of the caption it was made from."""
    features, num_shards = _output_features(instructions, stats.dim), _num_shards(len(instructions), args.shard_size)
    stash, drops = _StashReader(work, args.shard_size), DropLog("transfer")
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
            elif not isinstance(caption, str) or _caption_key(caption) != entry[1]:
                shard_drops.drop("caption_mismatch", row_id)
            else:
                rows.append(entry[0])
                kept = True
            keep.append(kept)
        keep_mask = pa.array(keep, type=pa.bool_())
        u = stash.rows(rows) if rows else torch.empty(0, stats.dim)
        shard_drops.save(_atomic(drops_path))
        os.replace(_atomic(drops_path), drops_path)
        _write_shard(table.filter(keep_mask), _embed(stats, u), features, path)
        drops.merge(shard_drops)
    return drops


# --- the stage -----------------------------------------------------------------------------------------------------


def _run_record(encoder: PairedEncoder, args: TransferArguments, sources: dict[str, ShardedSource]) -> dict:
    """`transfer_run.json`: encoder, arguments (paths as `unicorn_hf.utils.paths.portable_path` writes them) and
    inputs."""
    record = {"encoder_id": encoder.id, "dim": encoder.dim}
    arguments = {k: v for k, v in asdict(args).items() if k not in ("output_dir", "overwrite")}
    record["arguments"] = portable_record(arguments, args.output_dir)
    record["inputs"] = {name: {"num_rows": len(src), "fingerprint": src.fingerprint} for name, src in sources.items()}
    return record


def _check_previous(out: Path, record: dict) -> bool:
    """True when `out` holds this exact finished run; raises when it holds another encoder's or another run's data."""
    if TransferStatistics.exists(out):
        TransferStatistics.load(out).check_compatible(record["encoder_id"], record["dim"], out)
    previous_path = out / RUN_FILE
    if not previous_path.is_file():
        if any(out.glob("*/train-*.parquet")):
            raise ValueError(f"{out} holds data of an unknown run; use a fresh output_dir or --overwrite")
        return False
    previous = json.loads(previous_path.read_text())
    if previous["encoder_id"] != record["encoder_id"] or previous["dim"] != record["dim"]:
        raise ValueError(
            f"{previous_path}: a run with encoder {previous['encoder_id']!r} ({previous['dim']}-d) started here; "
            f"refusing to mix in {record['encoder_id']!r} ({record['dim']}-d); use a fresh output_dir or --overwrite"
        )
    if previous != record:
        raise ValueError(f"{previous_path}: a run with other arguments or inputs is here; use --overwrite to redo it")
    return not (out / WORK_DIR).exists() and TransferStatistics.exists(out)


def run_transfer(
    encoder_args: EncoderArguments, args: TransferArguments, encoder: PairedEncoder | None = None
) -> Path:
    """Run stage 3 end to end (resuming where an earlier run stopped); returns the output folder.

    `encoder`: the encoder of `encoder_args` when the caller already holds it (saves loading it again).
    """
    out = Path(args.output_dir)
    if args.overwrite and out.exists():
        logger.info("--overwrite: removing %s", out)
        shutil.rmtree(out)
    encoder = encoder or load_encoder(
        encoder_args.encoder,
        pretrained=encoder_args.pretrained,
        device=encoder_args.encoder_device,
        dtype=encoder_args.encoder_dtype,
        batch_size=encoder_args.encoder_batch_size,
        init_seed=encoder_args.init_seed,
        **encoder_args.backend_kwargs(),
    )
    captions = ShardedSource(args.captions_path, args.captions_config)
    _check_columns(captions, CAPTIONS_COLUMNS)
    inputs = {"captions": captions}
    if args.instructions_path is not None:
        inputs["instructions"] = ShardedSource(args.instructions_path, args.instructions_config)
        _check_columns(inputs["instructions"], INSTRUCTIONS_COLUMNS)

    record = _run_record(encoder, args, inputs)
    if _check_previous(out, record):
        logger.info("%s already holds this finished transfer; nothing to do (--overwrite to redo it)", out)
        return out
    work = out / WORK_DIR
    work.mkdir(parents=True, exist_ok=True)
    (out / RUN_FILE).write_text(json.dumps(record, indent=2) + "\n")

    # Duplicate ids make the instruction join ambiguous: the first occurrence wins, the others are drops.
    seen, duplicate, row = set(), set(), 0
    for table in captions.shards(args.shard_size, ["id"]):
        for row_id in table.column("id").to_pylist():
            if row_id in seen:
                duplicate.add(row)
            else:
                seen.add(row_id)
            row += 1
    del seen

    total, kept, drops, truncated = encode_captions(encoder, captions, args.shard_size, duplicate, work)
    drops.rows_in = len(captions)
    if kept == 0:
        raise ValueError(f"no caption of {args.captions_path} survived encoding: {drops.summary()}")
    stats = method_statistics(encoder, args, work, text_mean=(total / kept).float(), num_kept=kept)
    logger.info("text_mean over %d captions: |mu_T| = %.4f", kept, float(stats.text_mean.norm()))
    write_captions(captions, args, stats, work)
    all_drops = {"captions": drops}
    if "instructions" in inputs:
        index = caption_index(captions, args.shard_size, work)
        all_drops["instructions"] = write_instructions(inputs["instructions"], args, stats, work, index)
        all_drops["instructions"].rows_in = len(inputs["instructions"])
        del index
    config_names = [args.captions_config] + ([args.instructions_config] if "instructions" in inputs else [])
    for config_name, log in zip(config_names, all_drops.values(), strict=True):
        if not publish(work, out, config_name):
            raise ValueError(f"every row of config {config_name!r} was dropped: {log.summary()}")

    diagnostics = modality_gap_report(encoder, stats, out) if args.diagnostics else None  # every method, side by side
    stats.save(out)
    (out / DROPS_FILE).write_text(json.dumps({k: v.to_dict() for k, v in all_drops.items()}, indent=2) + "\n")
    truncation = {"truncated": truncated, "encoded": kept, "context_length": encoder.context_length}
    write_transfer_card(out, config_names, stats, all_drops, truncation, diagnostics, args)
    for name, log in all_drops.items():
        logger.info("%s %s", name, log.summary())
    if truncated is not None:
        logger.info("%d of %d captions (%.1f%%) exceed the %d-token context and were truncated",
                    truncated, kept, 100 * truncated / kept, encoder.context_length)  # fmt: skip
    shutil.rmtree(work)  # finished: the stash is only needed to resume
    return out
