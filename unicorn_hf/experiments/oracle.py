"""The image-trained oracle: the text arms' training rows, each with its pair's real image embedding instead of its
caption's transferred text embedding.

It is what LLaVA-style training sees (the same captions, the same projector and LM, real images), so its ladder is
the ceiling a text-only arm's transfer method is measured against: whatever an arm loses beyond the oracle, it loses
to the modality gap. The vectors are v = normalize(x - mean(X_train)), the paper's mean shift applied within the
image modality, where X_train are the raw (L2-normalised) embeddings of the training pairs' images, whatever rule the
text arm used. The stored statistics hold that mean as both the text-side and the image-side mean and no memory, so
a checkpoint trained on these rows moves an evaluated image exactly as it moved its training images.

Used by the does-it-see runner (`Experiment.transfer` for an arm with `embeddings: image`) and by
`recipes/image_oracle.py` (the concept-title recipe's oracle arm, `scripts/concept_arms.sh image_oracle`).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from unicorn_hf.data_contract import CAPTIONS_CONFIG, CONFIG_NAMES, IMAGE_EMBEDS
from unicorn_hf.encoders import load_encoder
from unicorn_hf.lit.pairs import UnreadableImageError
from unicorn_hf.modeling.modality_transfer import TransferSettings
from unicorn_hf.synthesis.pair_text import PAIR_IDS_FILE, every_pair_of
from unicorn_hf.transfer.statistics import TransferStatistics
from unicorn_hf.utils.drops import DROPS_FILE, DropLog
from unicorn_hf.utils.hub import configs_metadata, load_dataset_folder, write_card, write_dataset_config


logger = logging.getLogger(__name__)

IMAGE_EMBEDS_FILE = "image_embeds.safetensors"  # raw image embeddings [N, D] of the training pairs
IMAGE_EMBEDS_IDS_FILE = "image_embeds_ids.json"  # their pair ids, in row order
# normalize(x - mean(X_train)): the paper's mean shift (re-normalised, as its text) within the image modality
ORACLE_SETTINGS = TransferSettings(method="mean_shift", renormalize=True)


@dataclass
class PairImages:
    """Raw (L2-normalised, unshifted) image embeddings of pairs, and the pairs whose image could not be read."""

    embeds: dict[str, torch.Tensor]  # pair id -> [D]
    unreadable: list[str]  # pair ids whose image failed to load or render (dropped, counted)


def cached_pair_images(cache_dir: Path, ids: list[str], encoder_id: str | None = None) -> PairImages | None:
    """What `encode_pair_images` stored in `cache_dir` for exactly `ids` (and, when `encoder_id` is given, made by
    that encoder), or None when it holds nothing or something else (then the images are encoded again). An ids file
    that is a bare list (the does-it-see runner's older cache: no unreadable image, no encoder id) is read too."""
    ids_path = cache_dir / IMAGE_EMBEDS_IDS_FILE
    if not (cache_dir / IMAGE_EMBEDS_FILE).is_file() or not ids_path.is_file():
        return None
    record = json.loads(ids_path.read_text())
    record = record if isinstance(record, dict) else {"ids": record, "unreadable": []}
    if record["ids"] != ids or (encoder_id is not None and record.get("encoder_id") != encoder_id):
        return None
    unreadable = set(record["unreadable"])
    readable = [pair_id for pair_id in ids if pair_id not in unreadable]
    embeds = load_file(str(cache_dir / IMAGE_EMBEDS_FILE))["image_embeds"]  # [N_readable, D]
    return PairImages(dict(zip(readable, embeds, strict=True)), record["unreadable"])


def encode_pair_images(encoder, pairs: dict, ids: list[str], cache_dir: Path | None = None) -> PairImages:
    """Raw (L2-normalised, unshifted) image embeddings [D] of the pairs `ids`, in batches of `encoder.batch_size`
    with a progress bar. A pair whose image does not load or render (`UnreadableImageError`, e.g. an SVG that
    rsvg-convert refuses) is logged, left out and listed in `unreadable`, as the encoder's own feature pass does.

    With `cache_dir`, the result is read from (and written to) `image_embeds.safetensors` there when it was made for
    exactly these ids by this encoder (`encoder.id`), so a repeated run encodes nothing. Raises `KeyError`
    naming the first id that `pairs` (pair id -> `unicorn_hf.lit.pairs.Pair`) lacks, before any image is encoded.
    """
    cached = None if cache_dir is None else cached_pair_images(cache_dir, ids, encoder.id)
    if cached is not None:
        return cached
    missing = [pair_id for pair_id in ids if pair_id not in pairs]
    if missing:
        raise KeyError(f"{len(missing)} pair id(s) not among the encoder's pairs, first {missing[0]!r}")
    readable, unreadable, chunks = [], [], []
    for start in tqdm(range(0, len(ids), encoder.batch_size), desc="encode images", unit="batch"):
        batch_ids, images = [], []
        for pair_id in ids[start : start + encoder.batch_size]:
            try:
                images.append(pairs[pair_id].load())
            except UnreadableImageError as error:
                logger.warning("Dropping %s: %s", pair_id, error)
                unreadable.append(pair_id)
                continue
            batch_ids.append(pair_id)
        if images:
            readable.extend(batch_ids)
            chunks.append(encoder.encode_image(images))  # [B, D]
    if not chunks:
        raise ValueError(f"none of the {len(ids)} pairs' images could be read")
    embeds = torch.cat(chunks)  # [N_readable, D]
    if cache_dir is not None:
        cache_dir.mkdir(parents=True, exist_ok=True)
        save_file({"image_embeds": embeds.contiguous()}, str(cache_dir / IMAGE_EMBEDS_FILE))
        record = {"ids": ids, "unreadable": unreadable, "encoder_id": encoder.id}
        (cache_dir / IMAGE_EMBEDS_IDS_FILE).write_text(json.dumps(record) + "\n")
    return PairImages(dict(zip(readable, embeds, strict=True)), unreadable)


def training_pair_ids(text_dir: Path) -> tuple[dict[str, str], list[str]]:
    """(row id -> pair id, the sorted distinct pair ids) from a pair-text folder's `pair_ids.json`.

    Raises `FileNotFoundError` naming the file when the folder was not written by `recipes/pair_text.py`.
    """
    path = Path(text_dir) / PAIR_IDS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: the oracle needs the pair of every row (recipes/pair_text.py)")
    pair_of_row = json.loads(path.read_text())
    return pair_of_row, sorted(set(pair_of_row.values()))


def write_image_oracle(
    text_transfer: Path, pair_of_row: dict[str, str], images: PairImages, output_dir: Path
) -> dict[str, DropLog]:
    """Write the oracle folder: `text_transfer`'s captions and instructions configs, each row's `image_embeds`
    replaced by normalize(x - mean(X_train)) of its pair's raw image embedding x [D], and the statistics (fixed:
    `ORACLE_SETTINGS`, whatever rule `text_transfer` used).

    Rows without a pair (`no_pair`: e.g. concept-bank labels, which name no image) and rows whose pair's image is
    unreadable (`unreadable_image`) are dropped and counted, one `DropLog` per config, returned and written to
    `drops.json` and the card as the transfer stage writes them. Raises `ValueError` when no caption row is left, or
    `KeyError` naming a training pair that `images` neither embeds nor lists as unreadable.
    """
    output_dir = Path(output_dir)
    image_embeds, unreadable = images.embeds, set(images.unreadable)
    train_ids = sorted(set(pair_of_row.values()) - unreadable)
    missing = [pair_id for pair_id in train_ids if pair_id not in image_embeds]
    if missing:
        raise KeyError(f"{len(missing)} training pair(s) have no image embedding, first {missing[0]!r}")
    if not train_ids:
        raise ValueError(f"no training pair of {PAIR_IDS_FILE} has a readable image: nothing to train on")
    image_mean = torch.stack([image_embeds[pair_id] for pair_id in train_ids]).float().mean(0)  # [D]
    stats = TransferStatistics.load(text_transfer)
    oracle_stats = TransferStatistics(
        encoder_id=stats.encoder_id, dim=stats.dim, text_mean=image_mean,
        num_rows=len(train_ids),  # here: the training images that entered the mean
        normalized_input=True, settings=ORACLE_SETTINGS, num_images=len(train_ids),
        image_mean=image_mean.clone(),  # its own storage: safetensors refuses one tensor saved under two names
        encoder=stats.encoder,
    )  # fmt: skip

    def swap(row: dict) -> dict:
        vector = oracle_stats.embed_text(image_embeds[pair_of_row[row["id"]]].unsqueeze(0))[0]  # [D]
        return {IMAGE_EMBEDS: vector.to(torch.float16).tolist()}

    def reason(row_id: str) -> str | None:
        if row_id not in pair_of_row:
            return "no_pair"
        return "unreadable_image" if pair_of_row[row_id] in unreadable else None

    drops: dict[str, DropLog] = {}
    for config_name in CONFIG_NAMES:
        rows = load_dataset_folder(text_transfer, config_name)
        log = drops[config_name] = DropLog(stage="image_oracle", rows_in=len(rows))
        keep = []  # row indices; each row's reason is decided once, for the log and the selection alike
        for index, row_id in enumerate(rows["id"]):
            if (why := reason(row_id)) is None:
                keep.append(index)
            else:
                log.drop(why, row_id)
        kept = rows.select(keep)
        if config_name == CAPTIONS_CONFIG and len(kept) == 0:
            raise ValueError(f"no caption row of {text_transfer} is left: {log.summary()}")
        write_dataset_config(kept.map(swap, features=kept.features), output_dir, config_name)
    oracle_stats.save(output_dir)
    (output_dir / DROPS_FILE).write_text(json.dumps({k: v.to_dict() for k, v in drops.items()}, indent=2) + "\n")
    summaries = "\n".join(f"- {name}: {log.summary()}" for name, log in drops.items())
    body = (
        "# Image oracle\n\nThe rows of the text arms, each with its pair's real image embedding (shifted by the mean "
        "of the training images) instead of its caption's text embedding: what LLaVA-style training sees. Made by "
        f"`unicorn_hf.experiments.oracle` from `{text_transfer}`.\n\nRows in, kept and dropped (`{DROPS_FILE}`):\n\n"
        f"{summaries}\n"
    )
    write_card(output_dir, {"configs": configs_metadata(list(CONFIG_NAMES))}, body)
    for name, log in drops.items():
        logger.info("%s %s", name, log.summary())
    return drops


@dataclass
class ImageOracleArguments:
    """`recipes/image_oracle.py`: a text arm's transfer folder -> the image oracle's training folder."""

    text_dir: str = field(metadata={"help": "The pair-text folder (recipes/pair_text.py) holding pair_ids.json."})
    transfer_dir: str = field(metadata={"help": "That text's transfer folder (recipes/transfer.py): rows to copy."})
    encoder_config: str = field(metadata={"help": "The encoder recipe YAML (its sources name the pairs' images)."})
    encoder_dir: str = field(metadata={"help": "The trained encoder folder whose image tower embeds the images."})
    output_dir: str = field(metadata={"help": "Where the oracle's folder goes (image_embeds cached there too)."})
    encoder_batch_size: int = field(default=64, metadata={"help": "Images per encoder batch."})
    encoder_device: str = field(default="cpu", metadata={"help": "Where the image tower runs (cpu, cuda)."})


def run_image_oracle(args: ImageOracleArguments) -> dict[str, DropLog]:
    """Encode the training pairs' images with `args.encoder_dir` and write the oracle folder (see
    `write_image_oracle`); the image embeddings are cached in `output_dir`, so a rerun encodes nothing.

    Raises `ValueError` (before any image is encoded) when `transfer_dir`'s statistics were made by another encoder
    than `encoder_dir`: rung b of a ladder feeds text through the checkpoint's encoder, which must be the one whose
    image tower made the training vectors.
    """
    pair_of_row, train_ids = training_pair_ids(Path(args.text_dir))
    stats = TransferStatistics.load(args.transfer_dir)  # fails fast, naming the folder, when it holds no transfer
    pairs = {pair.id: pair for pair in every_pair_of(args.encoder_config)}
    encoder = load_encoder(
        f"local-dir:{args.encoder_dir}",
        device=args.encoder_device,
        dtype="float32",
        batch_size=args.encoder_batch_size,
    )
    stats.check_compatible(encoder.id, encoder.dim, args.transfer_dir)
    images = encode_pair_images(encoder, pairs, train_ids, cache_dir=Path(args.output_dir))
    return write_image_oracle(Path(args.transfer_dir), pair_of_row, images, Path(args.output_dir))
