"""Dataset card of the transfer output: configs, the transfer rule and its statistics, drops, diagnostics."""

from __future__ import annotations

import json
from pathlib import Path

from unicorn_hf.transfer.config import TransferArguments
from unicorn_hf.transfer.diagnostics import PLOT_FILE
from unicorn_hf.transfer.statistics import STATS_JSON, STATS_TENSORS, TransferStatistics
from unicorn_hf.utils.drops import DropLog
from unicorn_hf.utils.hub import configs_metadata, write_card
from unicorn_hf.utils.paths import portable_path


def _rule(stats: TransferStatistics) -> str:
    """The text side of the configured method as a formula (n = L2 normalisation; table in modality_transfer.py)."""
    settings = stats.settings
    rules = {
        "none": "v = u",
        "capdec": "v = n(u), then n(v + noise_std * eps) in every training step",
        "c3": "v = n(n(u) - text_mean), then n(v + noise_std * eps) in every training step",
        "realign": "v = n(n(s (n(u) - text_mean) + image_mean) - mu_hat + image_mean)",
        "memory_projection": "v = n(u); images: n(softmax(n(x) M^T / tau) M)",
    }
    if settings.method == "mean_shift":
        rule = "v = u - text_mean + image_mean" if settings.add_image_mean else "v = u - text_mean"
        rule += ", then n(v)" if settings.renormalize else ""
    else:
        rule = rules[settings.method]
    if settings.noise_std is not None:
        rule += f" (noise_std = {settings.noise_std})"
    if settings.project_images_onto_memory:
        rule += "; images are first projected onto the text memory M, then take the text side"
    return f"{settings.method}: {rule}"


def _diagnostics_lines(diagnostics: dict) -> list[str]:
    lines = [
        "## Modality-gap diagnostics",
        "",
        f"{diagnostics['num_pairs']} real photographs (scikit-image) with hand-written captions; methods that "
        f"subtract an image mean use the {diagnostics['image_mean']} image mean. Each row applies the method's text "
        "side to the captions and its image side to the images (no train-time noise). Chance recall@1 is "
        f"{diagnostics['chance_recall@1']:.3f}.",
        "",
        "| | centroid gap | matched cosine | recall@1 | recall@5 |",
        "|---|---|---|---|---|",
    ]
    rows = {"before (raw embeddings)": diagnostics["before"], f"after ({diagnostics['method']})": diagnostics["after"]}
    rows.update({f"method: {name}": metrics for name, metrics in diagnostics.get("methods", {}).items()})
    for name, m in rows.items():
        if "skipped" in m:
            lines.append(f"| {name} | {m['skipped']} | | | |")
            continue
        lines.append(
            f"| {name} | {m['centroid_gap']:.4f} | {m['matched_cosine']:.4f} | {m['recall@1']:.3f} "
            f"| {m['recall@5']:.3f} |"
        )
    return [*lines, "", f"![modality gap]({PLOT_FILE})", ""]


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
        f"and moved towards the image side of the embedding space by the modality transfer rule `{_rule(stats)}`, "
        "with `u` the L2-normalised caption embedding. It stands in for an image embedding when training the VLM; at "
        "inference a real image is embedded by the same encoder and goes through the same method's image side (the "
        "settings and statistics below travel with the model).",
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
        lines += _diagnostics_lines(diagnostics)
    return write_card(out, metadata, "\n".join(lines))
