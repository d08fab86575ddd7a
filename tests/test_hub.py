"""Hub-ready dataset folders: the card's `dataset_info`, and `load_dataset(folder, config)` on rewritten folders."""

from __future__ import annotations

import pytest
import yaml
from datasets import Dataset, load_dataset

from unicorn_hf.hub import configs_metadata, load_dataset_folder, write_card, write_dataset_config


def _write_folder(folder, rows: int) -> None:
    write_dataset_config(Dataset.from_dict({"id": [f"r{i}" for i in range(rows)], "x": list(range(rows))}), folder,
                         "captions")  # fmt: skip
    write_card(folder, {"configs": configs_metadata(["captions"])}, "A test folder.")


def test_card_declares_features_rows_and_bytes(tmp_path):
    _write_folder(tmp_path / "out", rows=4)
    front = (tmp_path / "out" / "README.md").read_text().split("---")[1]
    (info,) = yaml.safe_load(front)["dataset_info"]
    assert info["config_name"] == "captions"
    assert [feature["name"] for feature in info["features"]] == ["id", "x"]
    assert info["splits"] == [{"name": "train", "num_bytes": info["dataset_size"], "num_examples": 4}]
    assert info["download_size"] == (tmp_path / "out" / "captions" / "train-00000-of-00001.parquet").stat().st_size


def test_same_named_and_rewritten_folders_do_not_share_the_datasets_cache(tmp_path, monkeypatch):
    # datasets caches a local folder under its base name and a hash of the card metadata: the sizes in
    # `dataset_info` are what tells two `outputs` folders (or one folder before and after a re-run) apart.
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "cache"))
    first, second = tmp_path / "run1" / "outputs", tmp_path / "run2" / "outputs"
    _write_folder(first, rows=3)
    _write_folder(second, rows=5)
    assert len(load_dataset(str(first), "captions", split="train")) == 3
    assert len(load_dataset(str(second), "captions", split="train")) == 5
    _write_folder(first, rows=7)
    assert len(load_dataset(str(first), "captions", split="train")) == 7


def test_a_folder_without_its_card_is_an_unfinished_stage(tmp_path):
    # Every stage writes README.md last: shards without a card are what an interrupted stage leaves behind.
    _write_folder(tmp_path / "out", rows=3)
    assert len(load_dataset_folder(tmp_path / "out", "captions")) == 3
    (tmp_path / "out" / "README.md").unlink()
    with pytest.raises(FileNotFoundError, match=r"out has no README.md: the stage that writes this folder did not"):
        load_dataset_folder(tmp_path / "out", "captions")
