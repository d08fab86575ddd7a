"""A tiny random transformers CLIP saved like a Hub checkpoint (character-level BPE, 32-px images, 16-d joint space):
the `hf:` encoder whose image tower a Unicorn checkpoint can carry."""

from __future__ import annotations

import json
import string
from pathlib import Path

import torch


EMBED_DIM = 16


def write_tiny_hf_clip(folder: str | Path, seed: int = 0) -> Path:
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPTokenizer

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    # CLIP's BPE with no merges: every word becomes its characters, the last one marked with </w>.
    symbols = ["<|startoftext|>", "<|endoftext|>"]
    symbols += list(string.ascii_lowercase) + [f"{c}</w>" for c in string.ascii_lowercase]
    (folder / "vocab.json").write_text(json.dumps({symbol: i for i, symbol in enumerate(symbols)}))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt")).save_pretrained(folder)
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(folder)
    config = CLIPConfig(
        text_config={"vocab_size": len(symbols), "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
                     "num_attention_heads": 2, "max_position_embeddings": 24, "bos_token_id": 0, "eos_token_id": 1,
                     "pad_token_id": 1},
        vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
                       "image_size": 32, "patch_size": 16},
        projection_dim=EMBED_DIM,
    )  # fmt: skip
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        CLIPModel(config).save_pretrained(folder)
    return folder
