"""Held-out diagnostics of a paired encoder: cross-modal retrieval recall@k and the modality gap.

All inputs are L2-normalised embeddings of matched pairs: row i of `image_embeds` and of `text_embeds` belong
together, and every other row is a negative (captions are unique, see `unicorn_hf.lit.pairs`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def recall_at_k(image_embeds: torch.Tensor, text_embeds: torch.Tensor, ks: tuple[int, ...]) -> dict[str, float]:
    """Image->text and text->image recall@k, with the chance level k/N of a random ranking beside each."""
    if image_embeds.shape != text_embeds.shape or image_embeds.ndim != 2:
        raise ValueError(
            f"Expected matched [N, D] embeddings, got {tuple(image_embeds.shape)} and {tuple(text_embeds.shape)}"
        )
    n = image_embeds.shape[0]
    sims = image_embeds @ text_embeds.T  # [N, N], diagonal = matched pairs
    matched = sims.diagonal()  # [N]
    # Rank of the right answer = how many candidates score strictly higher (ties count in the model's favour).
    rank_i2t = (sims > matched[:, None]).sum(dim=1)  # [N] over texts, per image
    rank_t2i = (sims > matched[None, :]).sum(dim=0)  # [N] over images, per text
    metrics = {"n": float(n)}
    for k in ks:
        metrics[f"image_to_text_R@{k}"] = (rank_i2t < k).float().mean().item()
        metrics[f"text_to_image_R@{k}"] = (rank_t2i < k).float().mean().item()
        metrics[f"chance_R@{k}"] = min(k, n) / n
    return metrics


def mean_shift(embeds: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
    """Unicorn's transfer: subtract the modality mean, then re-normalise (v = u - mean(U), |v| = 1)."""
    return F.normalize(embeds - mean, dim=-1)


def centroid_gap(image_embeds: torch.Tensor, text_embeds: torch.Tensor) -> dict[str, float]:
    """Distance between the two modality centroids and the mean cosine of matched pairs."""
    centroid_distance = (image_embeds.mean(0) - text_embeds.mean(0)).norm().item()
    matched_cosine = F.cosine_similarity(image_embeds, text_embeds, dim=-1).mean().item()
    return {"centroid_distance": centroid_distance, "matched_cosine": matched_cosine}


def evaluate_pairs(
    image_embeds: torch.Tensor,
    text_embeds: torch.Tensor,
    image_mean: torch.Tensor,
    text_mean: torch.Tensor,
    ks: tuple[int, ...],
) -> dict[str, dict[str, float]]:
    """Recall and modality gap before and after the mean shift.

    The means come from the *training* pairs, as in Unicorn (the text mean of the caption corpus, the image mean of
    the image set), so the held-out centroid distance after the shift is not zero by construction.
    """
    shifted_images, shifted_texts = mean_shift(image_embeds, image_mean), mean_shift(text_embeds, text_mean)
    before = {**recall_at_k(image_embeds, text_embeds, ks), **centroid_gap(image_embeds, text_embeds)}
    after = {**recall_at_k(shifted_images, shifted_texts, ks), **centroid_gap(shifted_images, shifted_texts)}
    return {"before_shift": before, "after_shift": after}
