"""Modality-gap diagnostics: does the transfer rule bring captions to where their images are?

On a paired image-text set (by default the real scikit-image photographs of `unicorn_hf.utils.assets` with hand-written
captions) we measure, before and after the rule (`unicorn_hf.modeling.modality_transfer`), applied to each side:

- `centroid_gap`: distance between the text and the image centroids (the modality gap, Liang et al. 2022);
- `matched_cosine`: mean cosine similarity of each caption with its own image;
- `recall@k`: text-to-image retrieval, the fraction of captions whose image is among the k most similar images;
- `image_to_text_recall@1`: the fraction of images whose own caption is the most similar caption (what a VLM that
  reads the transferred image as if it were its caption needs).

"after" is the configured method: its text side on the captions, its image side on the images. `methods` repeats
that for every method the statistics can express (the mean shift with and without re-normalisation, CapDec, C3,
ReAlign, memory projection, and the configured method behind the memory projection), so that a user sees before
training which one brings images toward captions. The methods that subtract an image mean use the statistics'
`image_mean` or, when there is none, the mean of the paired set's own images (what the paper's code does at
evaluation; the report says which). No noise is added: the noise methods add theirs only in training steps.
With random encoder weights these numbers sit at chance and only the mechanics are exercised.
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F
from matplotlib.figure import Figure

from unicorn_hf.encoders import PairedEncoder
from unicorn_hf.modeling.modality_transfer import (
    IMAGE_MEAN_METHODS,
    NOISE_METHODS,
    TransferSettings,
    transfer_image,
    transfer_text,
)
from unicorn_hf.transfer.statistics import TransferStatistics
from unicorn_hf.utils.assets import photographs


logger = logging.getLogger(__name__)

PLOT_FILE = "modality_gap.png"
REPORT_FILE = "modality_gap.json"
RECALL_AT = (1, 5)
# The noise methods need a positive sigma to be valid settings; the diagnostics measure inference, which adds none.
_NOISE_NOT_APPLIED = 1.0


def gap_metrics(text: torch.Tensor, image: torch.Tensor) -> dict[str, float]:
    """Gap, matched cosine, text->image recall@k and image->text recall@1 of paired rows text[i] <-> image[i],
    both [N, D]."""
    t, i = F.normalize(text.float(), dim=-1), F.normalize(image.float(), dim=-1)
    similarity = t @ i.T  # [N_text, N_image]
    # Rank of the matching image for each caption: how many images score strictly higher than it.
    rank = (similarity > similarity.diagonal()[:, None]).sum(dim=-1)  # [N]
    metrics = {
        "centroid_gap": float((text.float().mean(0) - image.float().mean(0)).norm()),
        "matched_cosine": float(similarity.diagonal().mean()),
    }
    metrics.update({f"recall@{k}": float((rank < k).float().mean()) for k in RECALL_AT})
    image_rank = (similarity > similarity.diagonal()[None, :]).sum(dim=0)  # [N] over captions, per image
    metrics["image_to_text_recall@1"] = float((image_rank < 1).float().mean())
    return metrics


def method_variants(stats: TransferStatistics) -> dict[str, TransferSettings | str]:
    """Every method the statistics can express, by display name: settings, or the reason it cannot be shown."""
    configured = stats.settings
    memory = {"memory_size": configured.memory_size, "memory_temperature": configured.memory_temperature}
    noise = configured.noise_std or _NOISE_NOT_APPLIED
    variants: dict[str, TransferSettings | str] = {
        "none": TransferSettings(method="none"),
        "mean_shift": TransferSettings(method="mean_shift", renormalize=False),
        "mean_shift (renormalised)": TransferSettings(method="mean_shift", renormalize=True),
        "capdec": TransferSettings(method="capdec", noise_std=noise),
        "c3": TransferSettings(method="c3", noise_std=noise),
    }
    if stats.realign_mean is None:
        variants["realign"] = "needs an image_mean of unlabeled images (transfer `image_mean_source`)"
    else:
        variants["realign"] = TransferSettings(method="realign")
    if stats.memory is None or configured.memory_temperature is None:
        reason = "needs a memory and a memory_temperature (transfer `memory_size`, `memory_source`, ...)"
        variants["memory_projection"] = reason
        variants[f"{configured.method} + memory projection"] = reason
    else:
        variants["memory_projection"] = TransferSettings(method="memory_projection", **memory)
        if configured.method != "memory_projection":
            base = replace(configured, project_images_onto_memory=False)
            variants[f"{configured.method} + memory projection"] = replace(base, project_images_onto_memory=True)
    return variants


def _apply(
    settings: TransferSettings, stats: TransferStatistics, text_u: torch.Tensor, image_u: torch.Tensor, image_mean
) -> tuple[torch.Tensor, torch.Tensor]:
    tensors = {**stats.tensors(), "image_mean": image_mean}
    needs_mean = settings.method in IMAGE_MEAN_METHODS and not settings.add_image_mean
    mean = image_mean if needs_mean and not settings.projects_images else None
    return transfer_text(text_u, settings, tensors), transfer_image(image_u, settings, tensors, image_mean=mean)


def modality_gap(
    text_u: torch.Tensor, image_u: torch.Tensor, stats: TransferStatistics
) -> tuple[dict, torch.Tensor, torch.Tensor]:
    """Before/after metrics of paired embeddings text_u, image_u [N, D], and the same for every method
    (`report["methods"]`); also returns the configured method's transferred embeddings."""
    if text_u.shape != image_u.shape:
        raise ValueError(f"paired embeddings differ: text {tuple(text_u.shape)}, image {tuple(image_u.shape)}")
    image_mean = stats.image_mean if stats.image_mean is not None else image_u.float().mean(0)
    text_v, image_v = _apply(stats.settings, stats, text_u, image_u, image_mean)
    methods = {}
    for name, settings in method_variants(stats).items():
        if isinstance(settings, str):
            methods[name] = {"skipped": settings}
            continue
        noise = " (its train-time noise not applied)" if settings.method in NOISE_METHODS else ""
        methods[name] = {**gap_metrics(*_apply(settings, stats, text_u, image_u, image_mean)), "note": noise.strip()}
    report = {
        "num_pairs": len(text_u),
        "method": stats.method,
        "image_mean": "statistics" if stats.image_mean is not None else "paired set",
        "before": gap_metrics(text_u, image_u),
        "after": gap_metrics(text_v, image_v),
        "methods": methods,
        "chance_recall@1": 1 / len(text_u),
    }
    return report, text_v, image_v


def _pca_2d(*groups: torch.Tensor) -> list[torch.Tensor]:
    """Project every group onto the first two principal axes of all groups together."""
    points = torch.cat(groups).float()
    centre = points.mean(0)
    _, _, v = torch.linalg.svd(points - centre, full_matrices=False)  # rows of v: principal axes
    return [(group.float() - centre) @ v[:2].T for group in groups]  # [N, 2] each


def plot_modality_gap(before: tuple, after: tuple, report: dict, path: Path, title: str) -> Path:
    """Two PCA panels (before / after) with each caption joined to its image. Object-oriented matplotlib, so no
    global pyplot state or display backend is touched (renders with Agg)."""
    figure = Figure(figsize=(11, 5), dpi=100)
    for axis, (name, (text, image)) in zip(figure.subplots(1, 2), (("before", before), ("after", after)), strict=True):
        text_2d, image_2d = _pca_2d(text, image)
        for (tx, ty), (ix, iy) in zip(text_2d.tolist(), image_2d.tolist(), strict=True):
            axis.plot([tx, ix], [ty, iy], color="0.8", linewidth=0.8, zorder=1)
        axis.scatter(text_2d[:, 0], text_2d[:, 1], marker="o", color="tab:blue", label="caption", zorder=2)
        axis.scatter(image_2d[:, 0], image_2d[:, 1], marker="^", color="tab:orange", label="image", zorder=2)
        m = report[name]
        axis.set_title(
            f"{name}: gap {m['centroid_gap']:.3f}, cos {m['matched_cosine']:.3f}, "
            f"R@1 {m['recall@1']:.2f}, R@5 {m['recall@5']:.2f}",
            fontsize=9,
        )
        axis.set_xlabel("PC 1")
        axis.set_ylabel("PC 2")
        axis.legend(loc="best", fontsize=8)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    figure.savefig(path)
    return path


def modality_gap_report(
    encoder: PairedEncoder, stats: TransferStatistics, out: str | Path, pairs: list | None = None
) -> dict:
    """Encode a paired set (default: `unicorn_hf.utils.assets.photographs()`), measure, plot; writes `modality_gap.png`
    and `modality_gap.json` under `out` and returns the report."""
    if pairs is None:
        pairs = photographs()
    captions = [photo.caption for photo, _ in pairs]
    text_u = encoder.encode_text(captions)  # [N, D]
    image_u = encoder.encode_image([image for _, image in pairs])  # [N, D]
    report, text_v, image_v = modality_gap(text_u, image_u, stats)
    report["encoder_id"] = encoder.id
    report["pairs"] = [getattr(photo, "name", str(index)) for index, (photo, _) in enumerate(pairs)]
    out = Path(out)
    plot_modality_gap((text_u, image_u), (text_v, image_v), report, out / PLOT_FILE, f"modality gap, {encoder.id}")
    (out / REPORT_FILE).write_text(json.dumps(report, indent=2) + "\n")
    logger.info("Modality gap on %d pairs: %s -> %s", len(pairs), _fmt(report["before"]), _fmt(report["after"]))
    return report


def _fmt(metrics: dict) -> str:
    return ", ".join(f"{key} {value:.3f}" for key, value in metrics.items())
