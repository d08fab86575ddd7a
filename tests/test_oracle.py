"""The image-trained oracle's data (unicorn_hf/experiments/oracle.py): each paired row gets its pair's real image
embedding shifted by the training images' mean; rows without a pair are dropped and counted; image embeddings are
cached so a rerun encodes nothing."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from datasets import Dataset, Features, Sequence, Value

from unicorn_hf.experiments.oracle import (
    PairImages,
    cached_pair_images,
    encode_pair_images,
    training_pair_ids,
    write_image_oracle,
)
from unicorn_hf.lit.pairs import UnreadableImageError
from unicorn_hf.modeling.modality_transfer import TransferSettings
from unicorn_hf.synthesis.pair_text import PAIR_IDS_FILE
from unicorn_hf.transfer.statistics import TransferStatistics
from unicorn_hf.utils.drops import DROPS_FILE
from unicorn_hf.utils.hub import configs_metadata, load_dataset_folder, write_card, write_dataset_config


DIM = 8
FEATURES = Features({"id": Value("string"), "caption": Value("string"), "image_embeds": Sequence(Value("float16"))})


def _text_transfer(folder, row_ids: list[str]) -> None:
    """A text arm's transfer folder: captions and one dialogue per row, text embeddings of ones, and statistics
    that carry a memory (as recipes/concept_titles/transfer.yaml stores), which the oracle must not inherit."""
    rows = [{"id": row_id, "caption": f"title {row_id}", "image_embeds": [1.0] * DIM} for row_id in row_ids]
    write_dataset_config(Dataset.from_list(rows, features=FEATURES), folder, "captions")
    write_dataset_config(Dataset.from_list(rows[:2], features=FEATURES), folder, "instructions")
    TransferStatistics(
        encoder_id="open_clip:test", dim=DIM, text_mean=torch.zeros(DIM), num_rows=len(rows), normalized_input=True,
        settings=TransferSettings(method="none", memory_size=2, memory_temperature=0.01),
        memory=F.normalize(torch.ones(2, DIM), dim=-1),
    ).save(folder)  # fmt: skip
    write_card(folder, {"configs": configs_metadata(["captions", "instructions"])}, "# a text arm's transfer folder")


def test_oracle_rows_are_the_pairs_images_shifted_by_the_training_mean(tmp_path):
    torch.manual_seed(0)
    images = {pair: F.normalize(torch.randn(DIM), dim=0) for pair in ("emoji/a", "emoji/b", "clipart/c")}
    pair_of_row = {"row-a": "emoji/a", "row-b": "emoji/b", "row-c": "clipart/c", "row-d": "clipart/unreadable"}
    text = tmp_path / "transfer"
    _text_transfer(text, ["row-a", "row-b", "row-c", "concept-bank-row", "row-d"])

    drops = write_image_oracle(text, pair_of_row, PairImages(images, ["clipart/unreadable"]), tmp_path / "oracle")

    assert (drops["captions"].rows_in, drops["captions"].rows_out) == (5, 3)
    assert drops["captions"].dropped == {"no_pair": 1, "unreadable_image": 1}
    assert drops["captions"].examples == {"no_pair": ["concept-bank-row"], "unreadable_image": ["row-d"]}
    assert (drops["instructions"].rows_out, drops["instructions"].rows_dropped) == (2, 0)
    written = json.loads((tmp_path / "oracle" / DROPS_FILE).read_text())
    assert written["captions"]["dropped"] == drops["captions"].dropped
    mean = torch.stack(list(images.values())).mean(0)  # [D]
    captions = load_dataset_folder(tmp_path / "oracle", "captions")
    assert captions["id"] == ["row-a", "row-b", "row-c"]
    for row in captions:
        expected = F.normalize(images[pair_of_row[row["id"]]] - mean, dim=0)  # [D]
        torch.testing.assert_close(torch.tensor(row["image_embeds"]), expected, atol=2e-3, rtol=0)
    stats = TransferStatistics.load(tmp_path / "oracle")
    # The image side moves an evaluated image exactly as the training images were moved, and no text memory is kept.
    torch.testing.assert_close(stats.image_mean, mean)
    torch.testing.assert_close(stats.text_mean, mean)
    assert stats.memory is None and stats.method == "mean_shift" and stats.settings.renormalize
    torch.testing.assert_close(stats.embed_image(images["emoji/a"].unsqueeze(0))[0], stats.embed_text(
        images["emoji/a"].unsqueeze(0))[0])  # fmt: skip
    assert "dropped: no_pair=1, unreadable_image=1" in (tmp_path / "oracle" / "README.md").read_text()


def test_oracle_refuses_missing_images_and_text_without_pairs(tmp_path):
    text = tmp_path / "transfer"
    _text_transfer(text, ["row-a"])
    with pytest.raises(KeyError, match="emoji/a"):
        write_image_oracle(text, {"row-a": "emoji/a"}, PairImages({}, []), tmp_path / "oracle")
    with pytest.raises(ValueError, match="no caption row"):
        one_image = PairImages({"emoji/a": torch.ones(DIM)}, [])
        write_image_oracle(text, {"other-row": "emoji/a"}, one_image, tmp_path / "oracle")
    with pytest.raises(ValueError, match="no training pair"):
        write_image_oracle(text, {"row-a": "emoji/a"}, PairImages({}, ["emoji/a"]), tmp_path / "oracle")
    with pytest.raises(FileNotFoundError, match=PAIR_IDS_FILE):
        training_pair_ids(tmp_path)
    (tmp_path / PAIR_IDS_FILE).write_text(json.dumps({"r1": "p2", "r2": "p1", "r3": "p2"}))
    assert training_pair_ids(tmp_path) == ({"r1": "p2", "r2": "p1", "r3": "p2"}, ["p1", "p2"])


class _CountingEncoder:
    """Embeds an 'image' (here its pair's number) as a one-hot row; counts the images it was given."""

    batch_size = 2

    def __init__(self, encoder_id: str = "open_clip:counting") -> None:
        self.id = encoder_id
        self.seen = 0

    def encode_image(self, images: list[int]) -> torch.Tensor:
        self.seen += len(images)
        return F.one_hot(torch.tensor(images), DIM).float()  # [B, D]


class _Pair:
    def __init__(self, number: int) -> None:
        self.number = number

    def load(self) -> int:
        if self.number == 2:
            raise UnreadableImageError("Cannot render SVG p2.svg")
        return self.number


def test_pair_images_are_encoded_in_batches_and_cached(tmp_path):
    pairs = {f"p{number}": _Pair(number) for number in range(5)}
    ids = ["p3", "p2", "p0", "p4"]  # p2's image does not render: left out and listed, the others kept
    encoder = _CountingEncoder()
    first = encode_pair_images(encoder, pairs, ids, cache_dir=tmp_path)
    assert encoder.seen == 3 and first.unreadable == ["p2"]
    assert list(first.embeds) == ["p3", "p0", "p4"] and [int(v.argmax()) for v in first.embeds.values()] == [3, 0, 4]
    # The cache answers for exactly these ids made by this encoder: a rerun encodes nothing.
    again = encode_pair_images(_CountingEncoder(), {}, ids, cache_dir=tmp_path)
    assert again.unreadable == ["p2"] and list(again.embeds) == list(first.embeds)
    assert all(torch.equal(first.embeds[key], again.embeds[key]) for key in first.embeds)
    assert cached_pair_images(tmp_path, ["p3", "p0"]) is None
    other = _CountingEncoder("open_clip:other")  # another encoder's images are never taken from the cache
    encode_pair_images(other, pairs, ids, cache_dir=tmp_path)
    assert other.seen == 3
    with pytest.raises(KeyError, match="p9"):
        encode_pair_images(encoder, pairs, ["p9"], cache_dir=None)
