"""Summed log-likelihood of the labelled tokens of prepared rows: the one forward pass behind every likelihood
scoring of the experiments (candidate titles after pretraining, cloze replies after SFT), and the credit for
ranking the right candidate first."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from unicorn_hf.data_contract import IMAGE_EMBEDS


@torch.inference_mode()
def labelled_log_likelihoods(model, collate: Callable[[list[dict]], dict], rows: Sequence[dict], batch_size: int):
    """sum over each row's labelled tokens of log p(token | prefix), in nats.

    Args:
        model: a `UnicornForConditionalGeneration` (eval mode).
        collate: a `unicorn_hf.training.collator.UnicornDataCollator` (right padding): rows -> `input_ids`,
            `attention_mask`, `labels` [B, T] (-100 where not scored) and `image_embeds` [B, D].
        rows: prepared rows (`input_ids`, `loss_mask`, `image_embeds`), exactly as training feeds them.
        batch_size: rows per forward pass.

    Returns: [N] float32 on CPU.
    """
    scores = []
    for start in range(0, len(rows), batch_size):
        batch = collate(list(rows[start : start + batch_size]))
        labels = batch["labels"][:, 1:]  # [B, T-1]
        logits = model(
            input_ids=batch["input_ids"].to(model.device),
            attention_mask=batch["attention_mask"].to(model.device),
            image_embeds=batch[IMAGE_EMBEDS].to(model.device, model.dtype),
        ).logits  # [B, T, V]
        nll = torch.nn.functional.cross_entropy(
            logits[:, :-1].transpose(1, 2).float().cpu(), labels, reduction="none"
        )  # [B, T-1], 0 where labels are -100
        scores.append(-nll.sum(1))
    return torch.cat(scores) if scores else torch.zeros(0)


# Scores closer than this (nats) are ties: the same row scored in batches of other lengths differs by float32
# rounding (~1e-5 nats), which would otherwise break the ties of a constant input (calibrated scores of ~0) at random.
TIE_TOLERANCE = 1e-3


def ranked_correct(scores: torch.Tensor, answer_index: Sequence[int]) -> np.ndarray:
    """[N] credit for ranking the right candidate first: 1, or 1/t when it ties with t-1 others (the expected score
    of a uniform tie-break, so a constant input scores chance exactly instead of favouring a position). scores:
    [N, K]; scores within `TIE_TOLERANCE` nats of the best count as tied."""
    scores = scores.float()
    best = scores.max(dim=1, keepdim=True).values  # [N, 1]
    tied = scores >= best - TIE_TOLERANCE  # [N, K]
    answers = torch.as_tensor(list(answer_index))
    right = tied[torch.arange(len(answers)), answers].float()  # [N]
    return (right / tied.sum(1).float()).numpy()
