"""The transformers backend (`hf:`): a tiny random CLIP saved like a Hub checkpoint, with a character-level BPE."""

from __future__ import annotations

import json
import string

import pytest
import torch

from unicorn_hf.encoders import HFClipEncoder, load_encoder


CAPTIONS = ["a cat", "a red bus on a street in the rain at night", "two dogs", "soup"]


@pytest.fixture(scope="module")
def tiny_clip_dir(tmp_path_factory) -> str:
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPTokenizer

    folder = tmp_path_factory.mktemp("tiny-hf-clip")
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
        projection_dim=16,
    )  # fmt: skip
    torch.manual_seed(0)
    CLIPModel(config).save_pretrained(folder)
    return str(folder)


def test_hf_clip_backend(tiny_clip_dir):
    encoder = load_encoder(f"hf:{tiny_clip_dir}", device="cpu", dtype="float32", batch_size=2)
    assert isinstance(encoder, HFClipEncoder) and encoder.sort_by_length
    # a local folder is named by its content, never by its path on this machine
    assert encoder.id == f"hf:local-dir@sha256:{encoder.spec.fingerprint[:16]}" and tiny_clip_dir not in encoder.id
    assert encoder.dim == 16 and encoder.context_length == 24
    u, truncated = encoder.encode_text_and_count(CAPTIONS)
    assert u.shape == (4, 16) and u.dtype == torch.float32 and truncated == 1  # 33 characters + 2 > 24
    torch.testing.assert_close(u.norm(dim=-1), torch.ones(4))
    # Length-sorted batches are put back in input order: each row equals the caption encoded on its own.
    alone = torch.cat([encoder.encode_text([caption]) for caption in CAPTIONS])
    torch.testing.assert_close(u, alone, atol=1e-5, rtol=0)

    from unicorn_hf.utils.assets import photographs

    w = encoder.encode_image([image for _, image in photographs()[:3]])
    assert w.shape == (3, 16) and torch.isfinite(w).all()
    torch.testing.assert_close(w.norm(dim=-1), torch.ones(3))
