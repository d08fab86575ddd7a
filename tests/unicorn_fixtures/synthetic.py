"""A small stage-3 (transfer) output with random embeddings, in the exact schema of the real one.

For the training tests and benchmarks: they must not wait for the synthesis and transfer stages, yet they should read
the same folder layout (`captions` and `instructions` configs, `transfer_stats.*`) through the same loaders.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from datasets import Dataset, Features, List, Value

from unicorn_hf.transfer.statistics import STATS_JSON, STATS_TENSORS
from unicorn_hf.utils.hub import configs_metadata, write_card, write_dataset_config


_WORDS = [
    "a",
    "photo",
    "of",
    "a",
    "small",
    "red",
    "boat",
    "on",
    "a",
    "calm",
    "lake",
    "under",
    "a",
    "grey",
    "sky",
    "with",
    "two",
    "ducks",
    "swimming",
    "near",
    "the",
    "wooden",
    "pier",
    "and",
    "tall",
    "green",
    "pine",
    "trees",
    "along",
    "the",
    "far",
    "shore",
    "while",
    "a",
    "child",
    "in",
    "a",
    "yellow",
    "coat",
    "watches",
    "from",
    "the",
    "bank",
]
_ROLES = Features({"role": Value("string"), "content": Value("string")})


def _caption(generator: torch.Generator, num_words: int) -> str:
    picks = torch.randint(len(_WORDS), (num_words,), generator=generator).tolist()
    return " ".join(_WORDS[i] for i in picks).capitalize() + "."


def write_synthetic_transfer_folder(
    folder: str | Path,
    *,
    num_rows: int,
    embed_dim: int,
    encoder_id: str,
    caption_words: int,
    seed: int,
    with_image_mean: bool = False,
) -> Path:
    """Write `captions` + `instructions` configs (columns as in the data contract) and the transfer statistics."""
    folder = Path(folder)
    generator = torch.Generator().manual_seed(seed)
    embeds = torch.nn.functional.normalize(torch.randn(num_rows, embed_dim, generator=generator), dim=-1)  # [N, D]
    text_mean = embeds.mean(0)  # [D]
    shifted = (embeds - text_mean).half()  # [N, D], float16 storage as in stage 3
    ids = [f"row-{i:05d}" for i in range(num_rows)]
    captions = [_caption(generator, caption_words) for _ in range(num_rows)]
    embed_feature = List(Value("float16"), length=embed_dim)
    captions_ds = Dataset.from_dict(
        {
            "id": ids,
            "seed": [c.split(" ")[0] for c in captions],
            "seed_source": ["synthetic"] * num_rows,
            "caption": captions,
            "model_name": ["synthetic"] * num_rows,
            "image_embeds": shifted.tolist(),
        },
        features=Features(
            {
                "id": Value("string"),
                "seed": Value("string"),
                "seed_source": Value("string"),
                "caption": Value("string"),
                "model_name": Value("string"),
                "image_embeds": embed_feature,
            }
        ),
    )
    messages = []
    for i, caption in enumerate(captions):
        turns = [
            {"role": "user", "content": "<image>\nDescribe the picture."},
            {"role": "assistant", "content": caption},
        ]
        if i % 2:  # every other dialogue has a second exchange, as the multi-turn QA data does
            turns += [{"role": "user", "content": "Is there a boat?"}, {"role": "assistant", "content": "Yes."}]
        messages.append(turns)
    instructions_ds = Dataset.from_dict(
        {
            "id": ids,
            "task": ["qa"] * num_rows,
            "caption": captions,
            "messages": messages,
            "model_name": ["synthetic"] * num_rows,
            "image_embeds": shifted.tolist(),
        },
        features=Features(
            {
                "id": Value("string"),
                "task": Value("string"),
                "caption": Value("string"),
                "messages": List(_ROLES),
                "model_name": Value("string"),
                "image_embeds": embed_feature,
            }
        ),
    )
    write_dataset_config(captions_ds, folder, "captions")
    write_dataset_config(instructions_ds, folder, "instructions")
    write_card(folder, {"configs": configs_metadata(["captions", "instructions"])}, "Synthetic transfer output.")
    from safetensors.torch import save_file

    tensors = {"text_mean": text_mean.contiguous()}
    if with_image_mean:
        tensors["image_mean"] = torch.randn(embed_dim, generator=generator) * 0.01
    save_file(tensors, str(folder / STATS_TENSORS))
    # The fields of unicorn_hf.transfer.statistics.TransferStatistics (its JSON side).
    meta = {
        "encoder_id": encoder_id,
        "dim": embed_dim,
        "num_rows": num_rows,
        "normalized_input": True,
        "modality_transfer": {"method": "mean_shift", "renormalize": False},
    }
    (folder / STATS_JSON).write_text(json.dumps(meta, indent=2) + "\n")
    return folder
