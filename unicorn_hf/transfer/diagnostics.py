"""Modality-gap diagnostics: does the shift bring captions to where their images are?

On a paired image-text set (by default the real scikit-image photographs of `unicorn_hf.assets` with hand-written
captions) we measure, before and after the transfer rule of `TransferStatistics`:

- `centroid_gap`: distance between the text and the image centroids (the modality gap, Liang et al. 2022);
- `matched_cosine`: mean cosine similarity of each caption with its own image;
- `recall@k`: text-to-image retrieval, the fraction of captions whose image is among the k most similar images.

"After" uses `stats.embed_text` for captions and `stats.embed_image` for images, with the statistics' `image_mean`
or, when there is none, the mean of the paired set's own images (what the paper's code does at evaluation).
With random encoder weights these numbers sit at chance and only the mechanics are exercised.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
import torch.nn.functional as F

from unicorn_hf.transfer.encoders import PairedEncoder
from unicorn_hf.transfer.statistics import TransferStatistics


logger = logging.getLogger(__name__)

PLOT_FILE = "modality_gap.png"
REPORT_FILE = "modality_gap.json"
RECALL_AT = (1, 5)


def _metrics(text: torch.Tensor, image: torch.Tensor) -> dict[str, float]:
    """Gap, matched cosine and text->image recall of paired rows text[i] <-> image[i], both [N, D]."""
    t, i = F.normalize(text.float(), dim=-1), F.normalize(image.float(), dim=-1)
    similarity = t @ i.T  # [N_text, N_image]
    # Rank of the matching image for each caption: how many images score strictly higher than it.
    rank = (similarity > similarity.diagonal()[:, None]).sum(dim=-1)  # [N]
    metrics = {
        "centroid_gap": float((text.float().mean(0) - image.float().mean(0)).norm()),
        "matched_cosine": float(similarity.diagonal().mean()),
    }
    metrics.update({f"recall@{k}": float((rank < k).float().mean()) for k in RECALL_AT})
    return metrics


def modality_gap(
    text_u: torch.Tensor, image_u: torch.Tensor, stats: TransferStatistics
) -> tuple[dict, torch.Tensor, torch.Tensor]:
    """Before/after metrics of paired embeddings text_u, image_u [N, D]; also returns the shifted embeddings."""
    if text_u.shape != image_u.shape:
        raise ValueError(f"paired embeddings differ: text {tuple(text_u.shape)}, image {tuple(image_u.shape)}")
    image_mean = stats.image_mean if stats.image_mean is not None else image_u.float().mean(0)
    text_v, image_v = stats.embed_text(text_u), stats.embed_image(image_u, image_mean=image_mean)
    report = {
        "num_pairs": len(text_u),
        "image_mean": "statistics" if stats.image_mean is not None else "paired set",
        "before": _metrics(text_u, image_u),
        "after": _metrics(text_v, image_v),
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
    from matplotlib.figure import Figure

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
    """Encode a paired set (default: `unicorn_hf.assets.photographs()`), measure, plot; writes `modality_gap.png`
    and `modality_gap.json` under `out` and returns the report."""
    if pairs is None:
        from unicorn_hf.assets import photographs

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
