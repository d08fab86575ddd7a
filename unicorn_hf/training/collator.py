"""The Unicorn collator: expand `<image>`, pad, build labels, stack `image_embeds`.

Rows come from `unicorn_hf.training.data.prepare_dataset` (one `<image>` token, a 0/1 `loss_mask`). Labels are the
input ids where `loss_mask` is 1 and -100 elsewhere, so padding, the image positions and every non-target token
(the prompt, user turns) are never scored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from unicorn_hf.data_contract import IMAGE_EMBEDS


@dataclass
class UnicornDataCollator:
    """Collate prepared rows into `input_ids`, `attention_mask`, `labels` [B, T] and `image_embeds` [B, D].

    Args:
        pad_token_id: the tokenizer's padding id.
        image_token_id: id of `<image>`.
        num_image_tokens: copies of `<image>` per sequence (the model config's).
        embeds_dtype: dtype of the stacked embeddings, the model's (float16 storage is not its compute dtype).
        padding_side: "right" for training (the causal mask and the labels need no position shift).
        pad_to_multiple_of: pad T up to a multiple of this (tensor cores, compiled backends), or None.
    """

    pad_token_id: int
    image_token_id: int
    num_image_tokens: int
    embeds_dtype: torch.dtype = torch.float32
    padding_side: str = "right"
    pad_to_multiple_of: int | None = None

    def expand(self, input_ids: list[int], loss_mask: list[int]) -> tuple[list[int], list[int]]:
        """Replace the single `<image>` by `num_image_tokens` copies (loss mask 0 on all of them)."""
        position = input_ids.index(self.image_token_id)
        n = self.num_image_tokens
        return (
            input_ids[:position] + [self.image_token_id] * n + input_ids[position + 1 :],
            loss_mask[:position] + [0] * n + loss_mask[position + 1 :],
        )

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        sequences = [self.expand(row["input_ids"], row["loss_mask"]) for row in rows]
        length = max(len(ids) for ids, _ in sequences)
        if self.pad_to_multiple_of:
            length = -(-length // self.pad_to_multiple_of) * self.pad_to_multiple_of
        batch = len(rows)
        input_ids = torch.full((batch, length), self.pad_token_id, dtype=torch.long)  # [B, T]
        attention_mask = torch.zeros((batch, length), dtype=torch.long)  # [B, T]
        labels = torch.full((batch, length), -100, dtype=torch.long)  # [B, T]
        for i, (ids, mask) in enumerate(sequences):
            n = len(ids)
            span = slice(0, n) if self.padding_side == "right" else slice(length - n, length)
            ids_t = torch.tensor(ids, dtype=torch.long)
            input_ids[i, span] = ids_t
            attention_mask[i, span] = 1
            labels[i, span] = ids_t.masked_fill(torch.tensor(mask, dtype=torch.bool).logical_not(), -100)
        image_embeds = torch.tensor([row[IMAGE_EMBEDS] for row in rows], dtype=torch.float32)  # [B, D]
        return {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "labels": labels,
            IMAGE_EMBEDS: image_embeds.to(self.embeds_dtype),
        }
