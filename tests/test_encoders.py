"""Paired encoders: the open_clip backend by name and as a `local-dir:` folder, batching, normalisation, bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from unicorn_hf.encoders import (
    MODEL_CONFIGS,
    EncoderSpec,
    PairedEncoder,
    load_encoder,
    load_encoder_from_spec,
)


TINY = "unicorn-tiny-clip"
CAPTIONS = ["a photo of a cat", "a red bus on a street in the rain", "two dogs", "a bowl of soup on a table"]


@pytest.fixture(scope="module")
def tiny() -> PairedEncoder:
    return load_encoder(TINY, device="cpu", dtype="float32", batch_size=3, init_seed=0)


@pytest.fixture(scope="module")
def local_dir(tmp_path_factory, tiny) -> str:
    """An open_clip folder as the project's own encoder (issue #8) saves it: config + safetensors weights."""
    folder = tmp_path_factory.mktemp("open_clip_folder")
    model_cfg = json.loads((MODEL_CONFIGS / f"{TINY}.json").read_text())
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": model_cfg, "preprocess_cfg": {}}))
    save_file({k: v.contiguous() for k, v in tiny.model.state_dict().items()}, folder / "open_clip_model.safetensors")
    return str(folder)


def test_outputs_are_normalised_float32_in_input_order(tiny):
    u = tiny.encode_text(CAPTIONS)
    assert u.shape == (4, tiny.dim) and u.dtype == torch.float32
    torch.testing.assert_close(u.norm(dim=-1), torch.ones(4))
    # Batching (3 + 1 here) and order do not change a row's embedding.
    one_batch = load_encoder(TINY, device="cpu", dtype="float32", batch_size=None, init_seed=0)
    torch.testing.assert_close(one_batch.encode_text(CAPTIONS[::-1]).flip(0), u, atol=1e-5, rtol=0)

    from unicorn_hf.utils.assets import photographs

    images = [image for _, image in photographs()[:4]]
    w = tiny.encode_image(images)
    assert w.shape == (4, tiny.dim) and torch.isfinite(w).all()
    torch.testing.assert_close(w.norm(dim=-1), torch.ones(4))


def test_random_init_is_seeded_and_named(tiny):
    assert tiny.id == "open_clip:unicorn-tiny-clip#random-init-seed0" and tiny.dim == 64
    again = load_encoder(TINY, device="cpu", dtype="float32", batch_size=3, init_seed=0)
    other = load_encoder(TINY, device="cpu", dtype="float32", batch_size=3, init_seed=1)
    assert torch.equal(again.encode_text(CAPTIONS), tiny.encode_text(CAPTIONS))
    assert other.id != tiny.id and not torch.allclose(other.encode_text(CAPTIONS), tiny.encode_text(CAPTIONS))
    with pytest.raises(ValueError, match="init_seed"):
        load_encoder(TINY, device="cpu", dtype="float32", batch_size=3)


def test_local_dir_folder_loads_unchanged(local_dir, tiny):
    encoder = load_encoder(f"local-dir:{local_dir}", device="cpu", dtype="float32", batch_size=2)
    assert encoder.id == f"open_clip:local-dir@sha256:{encoder.spec.fingerprint[:16]}" and encoder.dim == tiny.dim
    assert encoder.spec.name == Path(local_dir).name
    assert local_dir not in json.dumps(encoder.spec.to_dict())  # no path of this machine in what stages store
    torch.testing.assert_close(encoder.encode_text(CAPTIONS), tiny.encode_text(CAPTIONS))  # the saved weights
    with pytest.raises(FileNotFoundError, match=r"open_clip_config\.json"):
        load_encoder(f"local-dir:{local_dir}/missing", device="cpu", dtype="float32", batch_size=2)


def test_low_precision_dtype(tiny):
    encoder = load_encoder(TINY, device="cpu", dtype="bfloat16", batch_size=4, init_seed=0)
    assert next(encoder.model.parameters()).dtype == torch.bfloat16
    u = encoder.encode_text(CAPTIONS)
    assert u.dtype == torch.float32
    assert torch.nn.functional.cosine_similarity(u, tiny.encode_text(CAPTIONS)).min() > 0.95
    with pytest.raises(ValueError, match="not a torch floating point type"):
        load_encoder(TINY, device="cpu", dtype="int8", batch_size=4, init_seed=0)


def test_empty_and_long_captions(tiny):
    with pytest.raises(ValueError, match="text 1 is empty"):
        tiny.encode_text(["a cat", "   "])
    long = " ".join(["word"] * 200)
    assert tiny.context_length == 77
    assert tiny.text_token_counts(["a cat", long]) == [4, 202]  # <start> a cat <end>; 200 words + 2
    assert tiny.count_truncated(["a cat", long, long]) == 2
    # The single-pass tokenization used for encoding equals open_clip's own tokenizer, cuts included.
    tokens, truncated = tiny._tokenize(["a cat", long, long])
    assert torch.equal(tokens, tiny.tokenizer(["a cat", long, long])) and truncated == 2
    assert tiny.encode_text_and_count(["a cat", long])[1] == 1
    assert torch.isfinite(tiny.encode_text([long])).all()  # truncated to the context, not an error


def test_a_local_encoder_is_identified_by_content_not_path(local_dir, tiny, tmp_path, monkeypatch):
    """Issue 15: a copy of the same folder elsewhere (another clone) is the same encoder, and a stored spec finds it
    from a search folder or its relative location; a folder with other weights at the same place is refused."""
    original = load_encoder(f"local-dir:{local_dir}", device="cpu", dtype="float32", batch_size=2)
    clone = tmp_path / "clone" / "outputs" / "encoder"
    shutil.copytree(local_dir, clone)
    copied = load_encoder(f"local-dir:{clone}", device="cpu", dtype="float32", batch_size=2)
    assert copied.id == original.id and copied.spec.name != original.spec.name

    # Given relative (as the recipes do), the location is kept as a hint; rebuilding works from that clone's root.
    monkeypatch.chdir(tmp_path / "clone")
    relative = load_encoder("local-dir:outputs/encoder", device="cpu", dtype="float32", batch_size=2)
    assert relative.spec.location == "outputs/encoder"
    spec = EncoderSpec.from_dict(json.loads(json.dumps(relative.spec.to_dict())))  # as stored in config.json
    rebuilt = load_encoder_from_spec(spec, device="cpu", dtype="float32", batch_size=2)
    assert rebuilt.id == relative.id
    torch.testing.assert_close(rebuilt.encode_text(CAPTIONS), tiny.encode_text(CAPTIONS))
    # ... or from a search folder (a checkpoint's own), wherever the recipe's relative path points
    monkeypatch.chdir(tmp_path)
    assert load_encoder_from_spec(spec, device="cpu", dtype="float32", batch_size=2, search=[clone]).id == spec.id

    # Other weights at the recorded location are another encoder; nothing found names the way out.
    other = tmp_path / "clone2" / "outputs" / "encoder"
    shutil.copytree(local_dir, other)
    save_file(
        {k: torch.zeros_like(v) for k, v in tiny.model.state_dict().items()}, other / "open_clip_model.safetensors"
    )
    monkeypatch.chdir(tmp_path / "clone2")
    with pytest.raises(FileNotFoundError, match=r"no copy with that content was found.*encoder: local-dir:<folder>"):
        load_encoder_from_spec(spec, device="cpu", dtype="float32", batch_size=2)
