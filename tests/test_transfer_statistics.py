"""Transfer statistics: the mean-shift rule against hand computations, persistence, refusals; diagnostics metrics.
(Every other method: tests/test_modality_transfer.py.)"""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F

from unicorn_hf.modeling.modality_transfer import TransferSettings
from unicorn_hf.transfer.diagnostics import gap_metrics, modality_gap
from unicorn_hf.transfer.statistics import STATS_JSON, STATS_TENSORS, TransferStatistics


def _stats(renormalize: bool = False, add_image_mean: bool = False, method: str = "mean_shift", **overrides):
    kwargs = {
        "encoder_id": "open_clip:test",
        "dim": 2,
        "text_mean": torch.tensor([0.6, 0.0]),
        "num_rows": 2,
        "normalized_input": True,
    }
    if method == "mean_shift":
        settings = TransferSettings(method=method, renormalize=renormalize, add_image_mean=add_image_mean)
    else:
        settings = TransferSettings(method=method)
    return TransferStatistics(**{**kwargs, "settings": settings, **overrides})


def test_mean_shift_matches_hand_computation():
    u = torch.tensor([[1.0, 0.0], [0.6, 0.8]])  # two unit vectors
    # Mean [0.8, 0.4]: v1 = [0.2, -0.4], v2 = [-0.2, 0.4].
    stats = _stats(text_mean=u.mean(0))
    torch.testing.assert_close(stats.embed_text(u), torch.tensor([[0.2, -0.4], [-0.2, 0.4]]))
    # Re-normalised: |v| = sqrt(0.04 + 0.16) = sqrt(0.2).
    norm = math.sqrt(0.2)
    renormalised = _stats(text_mean=u.mean(0), renormalize=True).embed_text(u)
    torch.testing.assert_close(renormalised, torch.tensor([[0.2 / norm, -0.4 / norm], [-0.2 / norm, 0.4 / norm]]))
    # An explicit image mean is what the image side subtracts; the rule is pure (inputs untouched).
    torch.testing.assert_close(
        stats.embed_image(u, torch.tensor([1.0, 1.0])), torch.tensor([[0.0, -1.0], [-0.4, -0.2]])
    )
    torch.testing.assert_close(u, torch.tensor([[1.0, 0.0], [0.6, 0.8]]))


def test_embed_text_and_image_follow_the_recorded_convention():
    u = torch.tensor([[1.0, 0.0]])
    text_mean, image_mean = torch.tensor([0.6, 0.0]), torch.tensor([0.0, 0.5])
    paper = _stats(text_mean=text_mean, image_mean=image_mean)
    torch.testing.assert_close(paper.embed_text(u), torch.tensor([[0.4, 0.0]]))  # u - mu_T
    torch.testing.assert_close(paper.embed_image(u), torch.tensor([[1.0, -0.5]]))  # u - mu_V
    ideal = _stats(text_mean=text_mean, image_mean=image_mean, add_image_mean=True)
    torch.testing.assert_close(ideal.embed_text(u), torch.tensor([[0.4, 0.5]]))  # u - mu_T + mu_V
    torch.testing.assert_close(ideal.embed_image(u), u)  # images are already in image space
    no_alignment = _stats(method="none")
    torch.testing.assert_close(no_alignment.embed_text(u), u)
    torch.testing.assert_close(no_alignment.embed_image(u), u)
    with pytest.raises(ValueError, match="no image_mean"):
        _stats().embed_image(u)
    torch.testing.assert_close(_stats().embed_image(u, image_mean=image_mean), torch.tensor([[1.0, -0.5]]))
    with pytest.raises(ValueError, match="needs an image_mean"):
        _stats(add_image_mean=True)


def test_files_of_the_former_mean_shift_flags_are_read_as_that_rule(tmp_path):
    _stats(text_mean=torch.tensor([0.6, 0.0])).save(tmp_path)
    data = json.loads((tmp_path / STATS_JSON).read_text())
    del data["modality_transfer"]
    (tmp_path / STATS_JSON).write_text(json.dumps({**data, "renormalize_after_shift": True, "center": True}))
    assert TransferStatistics.load(tmp_path).settings == TransferSettings(method="mean_shift", renormalize=True)
    (tmp_path / STATS_JSON).write_text(json.dumps({**data, "renormalize_after_shift": False, "center": False}))
    assert TransferStatistics.load(tmp_path).settings == TransferSettings(method="none")
    (tmp_path / STATS_JSON).write_text(json.dumps({**data, "renormalize_after_shift": False, "noise_std": 0.1}))
    with pytest.raises(ValueError, match="stored-noise ablation"):
        TransferStatistics.load(tmp_path)


def test_round_trip(tmp_path):
    stats = _stats(
        dim=3,
        text_mean=torch.tensor([0.1, -0.2, 0.3]),
        image_mean=torch.tensor([0.0, 0.5, -0.5]),
        num_images=7,
        renormalize=True,
    )
    stats.save(tmp_path)
    assert (tmp_path / STATS_TENSORS).is_file() and (tmp_path / STATS_JSON).is_file()
    loaded = TransferStatistics.load(tmp_path)
    assert torch.equal(loaded.text_mean, stats.text_mean) and torch.equal(loaded.image_mean, stats.image_mean)
    assert loaded.to_json_dict() == stats.to_json_dict()
    u = F.normalize(torch.randn(4, 3), dim=-1)
    assert torch.equal(loaded.embed_text(u), stats.embed_text(u))


def test_bad_widths_and_encoders_are_refused(tmp_path):
    with pytest.raises(ValueError, match=r"shape \(3,\), expected \(2,\)"):
        _stats(text_mean=torch.zeros(3))
    with pytest.raises(ValueError, match="non-finite"):
        _stats(text_mean=torch.tensor([float("nan"), 0.0]))
    stats = _stats()
    with pytest.raises(ValueError, match="statistics are 2-d but encoder 'open_clip:other' gives 4-d"):
        stats.check_compatible("open_clip:other", 4, tmp_path)
    with pytest.raises(ValueError, match="refusing to mix"):
        stats.check_compatible("open_clip:other", 2, tmp_path)
    stats.check_compatible("open_clip:test", 2, tmp_path)  # the same encoder passes
    with pytest.raises(FileNotFoundError, match="transfer_stats"):
        TransferStatistics.load(tmp_path)


def test_metrics_by_hand():
    same = torch.eye(4)
    assert gap_metrics(same, same) == {"centroid_gap": 0.0, "matched_cosine": 1.0, "recall@1": 1.0, "recall@5": 1.0,
                                       "image_to_text_recall@1": 1.0}  # fmt: skip
    # Each caption is closest to the *next* image: recall@1 = 0, matched cosine = 0, recall@5 = 1 (4 candidates).
    shifted = torch.roll(torch.eye(4), 1, dims=0)
    metrics = gap_metrics(same, shifted)
    assert (
        metrics["image_to_text_recall@1"] == 0.0
        and metrics["recall@1"] == 0.0
        and metrics["matched_cosine"] == 0.0
        and metrics["recall@5"] == 1.0
    )


def test_mean_shift_closes_a_synthetic_modality_gap():
    # Paired content plus a large modality-specific offset: the classic cone picture of the modality gap.
    generator = torch.Generator().manual_seed(0)
    content = torch.randn(32, 16, generator=generator)
    text_offset, image_offset = 4 * torch.randn(16, generator=generator), 4 * torch.randn(16, generator=generator)
    text = F.normalize(content + text_offset + 0.3 * torch.randn(32, 16, generator=generator), dim=-1)
    image = F.normalize(content + image_offset + 0.3 * torch.randn(32, 16, generator=generator), dim=-1)
    stats = _stats(dim=16, text_mean=text.mean(0), num_rows=32, renormalize=True)
    report, text_v, image_v = modality_gap(text, image, stats)
    assert report["image_mean"] == "paired set"
    # Both centroids are 0 right after the shift; re-normalising moves them only slightly.
    assert report["before"]["centroid_gap"] > 1.0 and report["after"]["centroid_gap"] < 0.05
    assert report["after"]["matched_cosine"] > report["before"]["matched_cosine"] + 0.2
    assert report["after"]["recall@1"] > 0.9
    assert text_v.shape == image_v.shape == (32, 16)
