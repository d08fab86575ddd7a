"""The quickstart's finished-stage markers (unicorn_hf/quickstart.py): a finished stage is skipped only when its
YAML still holds the settings it was made with, so a changed recipe never reuses an output made another way."""

from __future__ import annotations

import json
import logging

import pytest
import yaml

from unicorn_hf.quickstart import DONE_MARKER, QuickstartArguments, config_digest, run_stage


def _recipe(tmp_path, **settings) -> QuickstartArguments:
    """A recipe folder whose pretrain.yaml holds `settings` (and a comment)."""
    recipe = tmp_path / "recipe"
    recipe.mkdir(exist_ok=True)
    config = {"output_dir": str(tmp_path / "out" / "pretrain"), "max_steps": 300, **settings}
    (recipe / "pretrain.yaml").write_text("# a comment\n" + yaml.safe_dump(config))
    return QuickstartArguments(recipe_dir=str(recipe), stages=["pretrain"])


def _finish(tmp_path, record: dict) -> None:
    """The pretrain stage's output folder with a done-marker holding `record`."""
    folder = tmp_path / "out" / "pretrain"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / DONE_MARKER).write_text(json.dumps(record))


def test_a_finished_stage_is_skipped_only_with_the_settings_it_was_made_with(tmp_path, caplog):
    args = _recipe(tmp_path)
    _finish(tmp_path, {"command": "pretrain.py", "config_sha256": config_digest(args, "pretrain")})
    assert run_stage(args, "pretrain").seconds is None  # skipped: nothing ran

    # Comments and key order do not count; a setting does.
    reordered = {"max_steps": 300, "output_dir": str(tmp_path / "out" / "pretrain")}
    (tmp_path / "recipe" / "pretrain.yaml").write_text(yaml.safe_dump(reordered, sort_keys=False))
    assert run_stage(args, "pretrain").seconds is None
    changed = _recipe(tmp_path, caption_prompt="<image>\nWhat is shown in the image?")
    with pytest.raises(SystemExit, match=r"Stage 'pretrain'.*other settings than .*pretrain.yaml.*--overwrite"):
        run_stage(changed, "pretrain")

    # A marker from before digests were recorded cannot tell: skipped, with a warning that says so.
    _finish(tmp_path, {"command": "pretrain.py"})
    with caplog.at_level(logging.WARNING, logger="unicorn_hf.quickstart"):
        assert run_stage(changed, "pretrain").seconds is None
    assert "does not record its settings" in caplog.text


def test_a_stage_is_named_by_its_yaml_and_runs_the_script_of_the_kind_its_name_starts_with(tmp_path):
    from unicorn_hf.quickstart import stage_command, stage_kind

    assert stage_kind("pretrain") == "pretrain"
    assert stage_kind("pretrain_plain_seed1") == "pretrain"
    assert stage_kind("sft_ladder") == "sft_ladder"  # the longest kind wins over `sft`
    assert stage_kind("ladder_compare_plain") == "ladder_compare"
    assert stage_kind("recipes/tiny/encoder.yaml") == "encoder"
    with pytest.raises(ValueError, match=r"Stage 'plainpretrain'.*start with one"):
        stage_kind("plainpretrain")

    args = _recipe(tmp_path)
    args.accelerate_stages = ["pretrain"]  # a kind covers its variants
    (tmp_path / "recipe" / "pretrain_seed1.yaml").write_text(yaml.safe_dump({"output_dir": str(tmp_path / "s1")}))
    command = stage_command(args, "pretrain_seed1")
    assert command[1:3] == ["-m", "accelerate.commands.launch"]
    assert command[-3].endswith("pretrain.py") and command[-1] == str(tmp_path / "recipe" / "pretrain_seed1.yaml")
    elsewhere = tmp_path / "other" / "encoder.yaml"
    elsewhere.parent.mkdir()
    elsewhere.write_text(yaml.safe_dump({"output_dir": str(tmp_path / "enc")}))
    command = stage_command(args, str(elsewhere))
    assert command[-3].endswith("train_encoder.py") and command[-1] == str(elsewhere)
    assert "accelerate.commands.launch" not in command
