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
import shutil
from dataclasses import asdict
from pathlib import Path

from unicorn_hf.data_contract import CAPTIONS_COLUMNS, IMAGE_EMBEDS, INSTRUCTIONS_COLUMNS
from unicorn_hf.encoders import PairedEncoder, load_encoder
from unicorn_hf.transfer.card import write_transfer_card
from unicorn_hf.transfer.config import EncoderArguments, TransferArguments
from unicorn_hf.transfer.diagnostics import modality_gap_report
from unicorn_hf.transfer.encoding import WORK_DIR, compute_statistics, encode_captions
from unicorn_hf.transfer.sources import ShardedSource
from unicorn_hf.transfer.statistics import TransferStatistics
from unicorn_hf.transfer.writing import caption_index, publish, write_captions, write_instructions
from unicorn_hf.utils.drops import DROPS_FILE
from unicorn_hf.utils.paths import portable_record


logger = logging.getLogger(__name__)

RUN_FILE = "transfer_run.json"


def _check_columns(source: ShardedSource, expected: tuple[str, ...]) -> None:
    missing = [name for name in expected if name not in source.column_names]
    if missing:
        raise ValueError(f"{source.name}: columns {missing} are missing (has {source.column_names})")
    if IMAGE_EMBEDS in source.column_names:
        raise ValueError(f"{source.name} already has `{IMAGE_EMBEDS}`: point the transfer at stage-1/2 output")
    if len(source) == 0:
        raise ValueError(f"{source.name} has no rows")


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
    stats = compute_statistics(encoder, args, work, text_mean=(total / kept).float(), num_kept=kept)
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
