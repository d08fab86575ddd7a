"""Hub-ready dataset folders: the card's `dataset_info`, and `load_dataset(folder, config)` on rewritten folders."""

from __future__ import annotations

import pytest
import yaml
from datasets import Dataset, Features, List, Value, load_dataset

from unicorn_hf.utils.hub import configs_metadata, load_dataset_folder, write_card, write_dataset_config


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


# ------------------------------------------------------------------------------------------------ issue 22, case 5
def _embeds_shard(folder, index: int, widths: list[int], feature) -> None:
    """Shard `index` of two, rows r{index}0, r{index}1, ... whose image_embeds have `widths` values."""
    rows = {"id": [f"r{index}{i}" for i in range(len(widths))], "image_embeds": [[0.5] * w for w in widths]}
    features = Features({"id": Value("string"), "image_embeds": feature})
    (folder / "captions").mkdir(parents=True, exist_ok=True)
    Dataset.from_dict(rows, features=features).to_parquet(
        str(folder / "captions" / f"train-0000{index}-of-00002.parquet")
    )
    write_card(folder, {"configs": configs_metadata(["captions"])}, "A test folder.")


def test_a_wrong_length_row_is_named_by_shard_file_row_id_and_field(tmp_path):
    _embeds_shard(tmp_path, 0, [8, 8], List(Value("float16")))
    _embeds_shard(tmp_path, 1, [8, 8, 7], List(Value("float16")))
    shard = tmp_path / "captions" / "train-00001-of-00002.parquet"
    with pytest.raises(ValueError) as caught:
        load_dataset_folder(tmp_path, "captions")
    assert str(caught.value).startswith(
        f"{shard}: row 2 (id 'r12'): field 'image_embeds' has 7 values, expected 8 (as row 0 of "
        "train-00000-of-00002.parquet); 1 row(s) of this config differ."
    )


@pytest.mark.parametrize(
    ("second", "widths", "detail"),
    [
        (List(Value("float16"), length=7), [7, 7], "fixed_size_list<element: halffloat>[7]"),
        (List(Value("float16")), [8, 7], "list<element: halffloat>"),
    ],
)
def test_shards_with_different_list_types_are_named(tmp_path, second, widths, detail):
    """Without the check, `datasets` fails with a DatasetGenerationError that names no file and no field."""
    _embeds_shard(tmp_path, 0, [8, 8], List(Value("float16"), length=8))
    _embeds_shard(tmp_path, 1, widths, second)
    first, odd = (tmp_path / "captions" / f"train-0000{i}-of-00002.parquet" for i in (0, 1))
    bad_row = widths.index(7)
    with pytest.raises(ValueError) as caught:
        load_dataset_folder(tmp_path, "captions")
    message = str(caught.value)
    assert message.startswith(f"{odd}: field 'image_embeds' is {detail}, but {first} has fixed_size_list")
    assert message.endswith(f"Row {bad_row} (id 'r1{bad_row}') of {odd.name} has 7 values, expected 8.")


def test_shards_that_datasets_can_cast_still_load(tmp_path):
    _embeds_shard(tmp_path, 0, [8], List(Value("float16"), length=8))
    _embeds_shard(tmp_path, 1, [8], List(Value("float64")))
    assert load_dataset_folder(tmp_path, "captions")["image_embeds"] == [[0.5] * 8] * 2
