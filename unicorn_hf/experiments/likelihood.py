"""Summed log-likelihood of the labelled tokens of prepared rows: the one forward pass behind every likelihood
scoring of the experiments (candidate titles after pretraining, cloze replies after SFT)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch


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
            image_embeds=batch["image_embeds"].to(model.device, model.dtype),
        ).logits  # [B, T, V]
        nll = torch.nn.functional.cross_entropy(
            logits[:, :-1].transpose(1, 2).float().cpu(), labels, reduction="none"
        )  # [B, T-1], 0 where labels are -100
        scores.append(-nll.sum(1))
    return torch.cat(scores) if scores else torch.zeros(0)
