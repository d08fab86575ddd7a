"""Every modality transfer method on an encoder's held-out image-text pairs: which one brings real images toward
their captions before any VLM is trained?

Reads the transfer stage's statistics (its captions' mean, the stored image mean of unlabeled images, ReAlign's
scale and mu_hat, the caption memory) and the encoder folder's held-out pairs (`held_out_ids.json`, rebuilt from the
packages by the encoder recipe's own sources, seed and image size), applies each method's text side to the captions
and its image side to the images, and writes `methods.json` and `methods.md` (centroid gap, matched cosine,
text-to-image recall@1/5, image-to-text recall@1) under `output_dir`. No method is fitted to these pairs: the only
statistic of the evaluated images is the "eval mean" row, the paper's own protocol, reported beside the stored one.

Usage (CPU, after `make quickstart`):

    python recipes/transfer_diagnostics.py --encoder_recipe recipes/tiny/encoder.yaml \
        --transfer_dir outputs/tiny/transfer --output_dir outputs/tiny/transfer_diagnostics
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from trl import TrlParser

from unicorn_hf.encoders import load_encoder
from unicorn_hf.lit.recipe import parse_config, trained_encoder_pairs
from unicorn_hf.modeling.modality_transfer import TransferSettings, transfer_image, transfer_text
from unicorn_hf.transfer.diagnostics import gap_metrics, modality_gap
from unicorn_hf.transfer.statistics import TransferStatistics
from unicorn_hf.utils.logging import setup_logging


logger = logging.getLogger(__name__)


@dataclass
class DiagnosticsArguments:
    encoder_recipe: str = field(
        metadata={"help": "The encoder's recipe YAML (sources, seed, image size, output_dir)."}
    )
    transfer_dir: str = field(metadata={"help": "A transfer stage's output folder (its statistics)."})
    output_dir: str = field(metadata={"help": "Where methods.json and methods.md are written."})
    batch_size: int = field(default=64, metadata={"help": "Images / captions per encoder forward pass."})


def held_out_pairs(encoder_recipe: str, encoder_dir: str) -> list:
    """The encoder's held-out pairs, rebuilt from the packages exactly as its recipe drew them, in its pair order
    (`unicorn_hf.lit.recipe.trained_encoder_pairs`)."""
    pairs, held_out_ids = trained_encoder_pairs(encoder_recipe, encoder_dir)
    held_out = set(held_out_ids)
    return [pair for pair in pairs if pair.id in held_out]


def main(args: DiagnosticsArguments) -> Path:
    setup_logging()
    encoder_dir = parse_config(args.encoder_recipe)[2].output_dir
    stats = TransferStatistics.load(args.transfer_dir)
    encoder = load_encoder(f"local-dir:{encoder_dir}", device="cpu", dtype="float32", batch_size=args.batch_size)
    if encoder.id != stats.encoder_id:
        raise ValueError(f"{args.transfer_dir} was embedded by {stats.encoder_id!r}, not by {encoder.id!r}")
    pairs = held_out_pairs(args.encoder_recipe, encoder_dir)
    text_u = encoder.encode_text([pair.caption for pair in pairs])  # [N, D]
    image_u = encoder.encode_image([pair.load() for pair in pairs])  # [N, D]
    report, _, _ = modality_gap(text_u, image_u, stats)
    rows = {"before (raw embeddings)": report["before"], **report["methods"]}
    eval_mean = image_u.mean(0)  # the paper's protocol: the evaluated images' own mean
    paper_protocol = {
        "mean_shift (renormalised), eval mean": TransferSettings("mean_shift", renormalize=True),
        "c3, eval mean": TransferSettings("c3", noise_std=1.0),  # any sigma: the noise is for training steps only
    }
    for name, settings in paper_protocol.items():
        text_v = transfer_text(text_u, settings, stats.tensors())
        rows[name] = gap_metrics(text_v, transfer_image(image_u, settings, stats.tensors(), image_mean=eval_mean))
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    result = {"encoder_id": encoder.id, "num_pairs": len(pairs), "chance_recall@1": 1 / len(pairs),
              "stored_image_mean_images": stats.num_images, "memory_rows": None if stats.memory is None else
              len(stats.memory), "methods": rows}  # fmt: skip
    (out / "methods.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [f"{len(pairs)} held-out pairs of `{encoder.id}`; chance recall@1 {1 / len(pairs):.4f}.", "",
             "| method | centroid gap | matched cosine | text->image R@1 | R@5 | image->text R@1 |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    for name, m in rows.items():
        if "skipped" in m:
            lines.append(f"| {name} | skipped: {m['skipped']} | | | | |")
        else:
            lines.append(f"| {name} | {m['centroid_gap']:.3f} | {m['matched_cosine']:.3f} | {m['recall@1']:.3f} "
                         f"| {m['recall@5']:.3f} | {m['image_to_text_recall@1']:.3f} |")  # fmt: skip
    (out / "methods.md").write_text("\n".join(lines) + "\n")
    logger.info("Wrote %s:\n%s", out / "methods.md", "\n".join(lines))
    return out


def make_parser() -> TrlParser:
    return TrlParser((DiagnosticsArguments,))


if __name__ == "__main__":
    main(*make_parser().parse_args_and_config())
