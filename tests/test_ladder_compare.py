"""Probe ladders side by side (unicorn_hf/experiments/ladder_compare.py): the numbers are each ladder's own, a rung
one ladder lacks stays empty, and a ladder of another kind is refused by name."""

from __future__ import annotations

import json

import pytest

from unicorn_hf.experiments.ladder_compare import LadderCompareArguments, compare_ladders, comparison_table, main


def _stat(value: float, low: float, high: float, key: str = "accuracy") -> dict:
    return {key: value, "low": low, "high": high, "n": 300}


def _ladder(rules: dict[str, float]) -> dict:
    """A candidate ladder whose image rules score `rules` (calibrated), each +0.10 over shuffled [+0.05, +0.15]."""

    def entry(accuracy: float) -> dict:
        row = {"accuracy": _stat(accuracy, accuracy - 0.05, accuracy + 0.05),
               "minus_blind/shuffled": _stat(0.10, 0.05, 0.15, "difference")}  # fmt: skip
        return {"raw": row, "calibrated": row}

    summary = {"encoder": {"raw": {"accuracy": _stat(0.61, 0.56, 0.66)}}, "text": entry(0.50)}
    summary |= {f"image/{name}": entry(value) for name, value in rules.items()}
    summary["blind/shuffled"] = {"raw": {"accuracy": _stat(0.25, 0.2, 0.3)}, "calibrated": {"accuracy": _stat(
        0.25, 0.2, 0.3)}}  # fmt: skip
    summary["blind/zero"] = summary["blind/shuffled"]
    return {"summary": summary, "scorings": ["raw", "calibrated"], "num_items": 300}


def test_rows_hold_each_ladders_numbers_and_empty_cells_for_missing_rungs():
    table = comparison_table({"none": _ladder({"as_trained": 0.30}), "oracle": _ladder({"eval_mean": 0.55})})
    header, _, none_row, oracle_row = table.splitlines()[:4]
    assert header == "| ladder | text | image/as_trained | blind/shuffled | image/eval_mean |"
    assert none_row == ("| none | 50.0 [45.0, 55.0], +10.0 [+5.0, +15.0] | 30.0 [25.0, 35.0], +10.0 [+5.0, +15.0] | "
                        "25.0 [20.0, 30.0] |  |")  # fmt: skip
    assert oracle_row.split(" | ")[2] == ""  # the oracle has no as_trained rule
    assert oracle_row.endswith("| 55.0 [50.0, 60.0], +10.0 [+5.0, +15.0] |")
    assert "encoder" not in header and "blind/zero" not in header


def test_a_ladder_without_the_scoring_or_file_is_refused_by_name(tmp_path):
    sft = {"summary": {}, "scorings": ["mc", "yes_no"], "num_items": 150}
    with pytest.raises(ValueError, match="ladder 'sft' has no 'calibrated' scoring"):
        comparison_table({"sft": sft})
    with pytest.raises(FileNotFoundError, match="ladder 'gone'"):
        compare_ladders({"gone": tmp_path / "missing.json"}, tmp_path / "out")
    with pytest.raises(ValueError, match=r"NAME=PATH.*'no-equals-sign\.json'"):
        LadderCompareArguments(ladders=["no-equals-sign.json"], output_dir=str(tmp_path))
    with pytest.raises(ValueError, match=r"names \['a'\] more than once"):
        LadderCompareArguments(ladders=["a=x.json", "a=y.json"], output_dir=str(tmp_path))


def test_the_command_line_and_a_yaml_config_write_json_markdown_and_a_plot(tmp_path):
    path = tmp_path / "ladder.json"
    path.write_text(json.dumps(_ladder({"memory_projection": 0.45}) | {"chance": 0.25}))
    record = main(["--ladders", f"ref={path}", "--output_dir", str(tmp_path / "out")])
    assert record["ladders"] == {"ref": str(path)}
    written = (tmp_path / "out" / "comparison.md").read_text()
    assert "## calibrated" in written and "## raw" in written and "| ref | 50.0 [45.0, 55.0]" in written
    assert json.loads((tmp_path / "out" / "comparison.json").read_text())["num_items"] == {"ref": 300}
    assert (tmp_path / "out" / "comparison.png").stat().st_size > 0

    config = tmp_path / "compare.yaml"
    config.write_text(f"ladders:\n  - seed0={path}\n  - seed1={path}\noutput_dir: {tmp_path / 'yaml'}\n")
    record = main(["--config", str(config)])
    assert list(record["ladders"]) == ["seed0", "seed1"]
    table = (tmp_path / "yaml" / "comparison.md").read_text()
    assert "| seed0 | 50.0 [45.0, 55.0]" in table and "| seed1 | 50.0 [45.0, 55.0]" in table


def test_a_ladder_folder_is_read_and_a_json_of_another_kind_is_refused_before_anything_is_written(tmp_path):
    folder = tmp_path / "seed0" / "ladder"
    folder.mkdir(parents=True)
    (folder / "ladder.json").write_text(json.dumps(_ladder({"memory_projection": 0.45})))
    record = compare_ladders({"seed 0": folder}, tmp_path / "out")
    assert record["num_items"] == {"seed 0": 300}
    other = tmp_path / "results.json"
    other.write_text(json.dumps({"results": []}))
    with pytest.raises(ValueError, match=r"ladder 'eval': .*results\.json is not a ladder\.json"):
        compare_ladders({"eval": other}, tmp_path / "refused")
    sft = tmp_path / "sft.json"
    sft.write_text(json.dumps({"summary": {}, "scorings": ["mc", "yes_no"], "num_items": 150}))
    with pytest.raises(ValueError, match="has no 'calibrated' scoring"):
        compare_ladders({"sft": sft}, tmp_path / "refused")
    assert not (tmp_path / "refused").exists()
    with pytest.raises(ValueError, match="a list of 'NAME=path"):
        LadderCompareArguments(ladders={"seed0": "x.json"}, output_dir=str(tmp_path))
