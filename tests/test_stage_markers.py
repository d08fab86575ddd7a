"""The one marker format (unicorn_hf/stages/markers.py), shared by the stage runner and the does-it-see experiment."""

import json

import pytest

from unicorn_hf.stages.markers import (
    DONE_MARKER,
    changed_settings,
    is_finished,
    read_marker,
    settings_digest,
    write_marker,
)


def test_a_written_marker_records_settings_and_their_digest(tmp_path):
    settings = {"output_dir": "outputs/x", "max_steps": 3}
    path = write_marker(tmp_path / "stage", {"seconds": 1.5}, settings)
    assert path == tmp_path / "stage" / DONE_MARKER and is_finished(tmp_path / "stage")
    record = read_marker(tmp_path / "stage")
    assert record["config"] == settings and record["config_sha256"] == settings_digest(settings)
    assert record["seconds"] == 1.5 and record["finished_at"] > 0
    assert changed_settings(record, dict(reversed(list(settings.items())))) is None  # key order does not count


def test_changed_settings_names_the_keys_or_says_it_cannot(tmp_path):
    record = read_marker(write_marker(tmp_path, settings={"a": 1, "b": [1, 2]}).parent)
    assert changed_settings(record, {"a": 1, "b": [1, 3], "c": 0}) == ["b", "c"]
    digest_only = {"config_sha256": record["config_sha256"]}
    assert changed_settings(digest_only, {"a": 2}) == []  # changed, keys unknown
    assert changed_settings({"seconds": 3}, {"a": 2}) is None  # an older marker: the caller warns


def test_the_experiment_runs_scripts_of_the_one_registry():
    from unicorn_hf.experiments import does_it_see
    from unicorn_hf.stages.runner import STAGE_SCRIPTS

    assert does_it_see.STAGE_SCRIPTS is STAGE_SCRIPTS
    assert not hasattr(does_it_see, "SCRIPTS") and not hasattr(does_it_see, "DONE")


def test_read_marker_of_an_unfinished_folder_raises(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_marker(tmp_path)
    assert json.loads(write_marker(tmp_path).read_text()).keys() == {"finished_at"}


def test_a_marker_can_keep_the_digest_only(tmp_path):
    """The stage runner's markers: settings that may name paths of this machine are not written, only their digest."""
    record = read_marker(write_marker(tmp_path, settings={"model": "/abs/model"}, keep_settings=False).parent)
    assert "config" not in record and record["config_sha256"] == settings_digest({"model": "/abs/model"})
    assert changed_settings(record, {"model": "/abs/other"}) == []  # changed, no keys to name
