"""Dataset card of the transfer output: configs, the transfer rule and its statistics, drops, diagnostics."""

from __future__ import annotations

import json
from pathlib import Path

from unicorn_hf.drops import DropLog
from unicorn_hf.hub import configs_metadata, write_card
from unicorn_hf.paths import portable_path
from unicorn_hf.transfer.config import TransferArguments
from unicorn_hf.transfer.diagnostics import PLOT_FILE
from unicorn_hf.transfer.statistics import STATS_JSON, STATS_TENSORS, TransferStatistics


def _rule(stats: TransferStatistics) -> str:
    if not stats.center:
        rule = "v = u  (no mean shift: Gaussian-noise baseline)"
    elif stats.add_image_mean:
        rule = "v = u - text_mean + image_mean"
    else:
        rule = "v = u - text_mean"
    if stats.center and stats.renormalize_after_shift:
        rule += ", then v / ||v||"
    if stats.noise_std is not None:
        rule += f", then + N(0, {stats.noise_std}^2) drawn once per row"
    return rule


def write_transfer_card(
    out: Path,
    config_names: list[str],
    stats: TransferStatistics,
    drops: dict[str, DropLog],
    truncation: dict,
    diagnostics: dict | None,
    args: TransferArguments,
) -> Path:
    metadata = {
        "configs": configs_metadata(config_names),
        "tags": ["unicorn", "synthetic", "text-only-vlm", "modality-transfer"],
        "unicorn_transfer": {
            "encoder_id": stats.encoder_id,
            **({"encoder": stats.encoder} if stats.encoder else {}),
            "dim": stats.dim,
            "rule": _rule(stats),
        },
    }
    random_weights = "#random-init" in stats.encoder_id
    lines = [
        "# Unicorn stage 3: modality representation transfer",
        "",
        f"Each row's `image_embeds` ({stats.dim} x float16) is the caption embedded by `{stats.encoder_id}` "
        f"and moved towards the image side of the embedding space: `{_rule(stats)}`, with `u` the L2-normalised "
        "caption embedding. It stands in for an image embedding when training the VLM; at inference a real image "
        "is embedded by the same encoder and shifted by `image_mean` (the statistics below travel with the model).",
        "",
    ]
    if random_weights:
        lines += ["> **The encoder has random weights**: these embeddings only exercise the pipeline.", ""]
    inputs = f"captions `{portable_path(args.captions_path, out)}`"
    if args.instructions_path is not None:
        inputs += f", instructions `{portable_path(args.instructions_path, out)}`"
    lines += [
        f"Inputs: {inputs}.",
        "",
        "## Statistics",
        "",
        f"Saved beside the data as `{STATS_TENSORS}` (tensors) and `{STATS_JSON}`:",
        "",
        "```json",
        json.dumps(stats.to_json_dict(), indent=2),
        "```",
        "",
    ]
    if truncation["truncated"] is not None:
        rate = truncation["truncated"] / max(1, truncation["encoded"])
        lines += [
            f"Captions longer than the text encoder's {truncation['context_length']}-token context are truncated: "
            f"{truncation['truncated']} of {truncation['encoded']} ({100 * rate:.1f}%).",
            "",
        ]
    lines += ["## Rows", "", "| config | rows in | rows out | dropped (reason: count) |", "|---|---|---|---|"]
    for name, log in drops.items():
        reasons = ", ".join(f"{reason}: {count}" for reason, count in sorted(log.dropped.items())) or "none"
        lines.append(f"| {name} | {log.rows_in} | {log.rows_out} | {reasons} |")
    lines += ["", "Example ids of dropped rows are in `drops.json`.", ""]
    if diagnostics is not None:
        lines += [
            "## Modality-gap diagnostics",
            "",
            f"{diagnostics['num_pairs']} real photographs (scikit-image) with hand-written captions; after the shift, "
            f"images are centred with the {diagnostics['image_mean']} image mean. Chance recall@1 is "
            f"{diagnostics['chance_recall@1']:.3f}.",
            "",
            "| | centroid gap | matched cosine | recall@1 | recall@5 |",
            "|---|---|---|---|---|",
        ]
        for name in ("before", "after"):
            m = diagnostics[name]
            lines.append(
                f"| {name} | {m['centroid_gap']:.4f} | {m['matched_cosine']:.4f} | {m['recall@1']:.3f} "
                f"| {m['recall@5']:.3f} |"
            )
        lines += ["", f"![modality gap]({PLOT_FILE})", ""]
    return write_card(out, metadata, "\n".join(lines))
