"""The quickstart's finished-stage markers (unicorn_hf/stages/runner.py): a finished stage is skipped only when its
YAML still holds the settings it was made with, so a changed recipe never reuses an output made another way."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import yaml

from unicorn_hf.stages.runner import DONE_MARKER, StageRunArguments, config_digest, run_stage


def _recipe(tmp_path, **settings) -> StageRunArguments:
    """A recipe folder whose pretrain.yaml holds `settings` (and a comment)."""
    recipe = tmp_path / "recipe"
    recipe.mkdir(exist_ok=True)
    config = {"output_dir": str(tmp_path / "out" / "pretrain"), "max_steps": 300, **settings}
    (recipe / "pretrain.yaml").write_text("# a comment\n" + yaml.safe_dump(config))
    return StageRunArguments(recipe_dir=str(recipe), stages=["pretrain"])


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
    with caplog.at_level(logging.WARNING, logger="unicorn_hf.stages.runner"):
        assert run_stage(changed, "pretrain").seconds is None
    assert "does not record its settings" in caplog.text


def test_a_stage_is_named_by_its_yaml_and_runs_the_script_of_the_kind_its_name_starts_with(tmp_path):
    from unicorn_hf.stages.runner import stage_command, stage_kind

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


def _two_stage_recipe(tmp_path) -> StageRunArguments:
    """`pair_text` writes a file; `transfer` reads pair_text's folder. The script beside the recipe folder is a
    stand-in that records each run in its output_dir (the runner's logic is under test, not the stages)."""
    recipe = tmp_path / "recipes" / "mine"
    recipe.mkdir(parents=True)
    script = (
        "import sys, yaml, pathlib, time\n"
        "out = pathlib.Path(yaml.safe_load(open(sys.argv[2]))['output_dir'])\n"
        "out.mkdir(parents=True, exist_ok=True)\n"
        "(out / 'runs.txt').open('a').write(f'{time.time()}\\n')\n"
    )
    for name in ("pair_text.py", "transfer.py"):
        (tmp_path / "recipes" / name).write_text(script)
    text, transfer = tmp_path / "out" / "text", tmp_path / "out" / "transfer"
    (recipe / "pair_text.yaml").write_text(yaml.safe_dump({"output_dir": str(text)}))
    (recipe / "transfer.yaml").write_text(yaml.safe_dump({"captions_path": str(text), "output_dir": str(transfer)}))
    return StageRunArguments(recipe_dir=str(recipe), stages=["pair_text", "transfer"],
                               summary_file=str(transfer / "summary.json"))  # fmt: skip


def _runs(folder) -> int:
    return len((folder / "runs.txt").read_text().splitlines())


def test_a_stage_is_redone_when_a_stage_it_reads_was_remade_after_it_and_the_summary_keeps_recorded_times(tmp_path):
    from unicorn_hf.stages.runner import run_stages

    args = _two_stage_recipe(tmp_path)
    text, transfer = tmp_path / "out" / "text", tmp_path / "out" / "transfer"
    run_stages(args)
    assert (_runs(text), _runs(transfer)) == (1, 1)
    run_stages(args)  # nothing changed: both skipped
    assert (_runs(text), _runs(transfer)) == (1, 1)
    summary = json.loads((transfer / "summary.json").read_text())
    assert [stage["seconds"] for stage in summary["stages"]] == [None, None]
    assert all(stage["recorded_seconds"] > 0 for stage in summary["stages"]) and summary["recorded_seconds"] > 0
    assert "summary" not in summary["stages"][1]["summary"]  # the run's own summary file is not read back

    # A third stage reads transfer's output (as `./path`): redone too, two stages down, and a dry run says so.
    ladder = tmp_path / "out" / "ladder"
    (tmp_path / "recipes" / "ladder.py").write_text((tmp_path / "recipes" / "transfer.py").read_text())
    config = {"model_name_or_path": f"./{transfer.relative_to(Path.cwd())}" if transfer.is_relative_to(Path.cwd())
              else str(transfer) + "/", "output_dir": str(ladder)}  # fmt: skip
    (tmp_path / "recipes" / "mine" / "ladder.yaml").write_text(yaml.safe_dump(config))
    args.stages = ["pair_text", "transfer", "ladder"]
    run_stages(args)
    assert (_runs(text), _runs(transfer), _runs(ladder)) == (1, 1, 1)

    (text / DONE_MARKER).unlink()  # pair_text is redone, so transfer, which reads it, and ladder are redone too
    args.dry_run = True
    assert [result.dry_run for result in run_stages(args)] == [True, True, True]  # all would run
    assert (_runs(text), _runs(transfer), _runs(ladder)) == (1, 1, 1)
    args.dry_run = False
    run_stages(args)
    assert (_runs(text), _runs(transfer), _runs(ladder)) == (2, 2, 2)


def test_stages_are_checked_before_any_runs_and_a_dry_run_removes_nothing(tmp_path):
    from unicorn_hf.stages.runner import run_stages

    args = _two_stage_recipe(tmp_path)
    args.stages = ["pair_text", "foo", str(tmp_path / "missing" / "encoder.yaml")]
    with pytest.raises(
        SystemExit, match=r"nothing was run:\n- Stage 'foo': .*\n- .*missing/encoder.yaml does not exist"
    ):
        run_stages(args)
    assert not (tmp_path / "out").exists()
    nested = tmp_path / "recipes" / "mine" / "ladder_compare.yaml"
    nested.write_text(yaml.safe_dump({"ladders": [], "output_dir": str(tmp_path / "out")}))
    args.stages = ["pair_text", "ladder_compare"]
    with pytest.raises(SystemExit, match=r"pair_text writes inside the output_dir of ladder_compare \(.*/out\)"):
        run_stages(args)
    args.stages, args.accelerate_stages = ["pair_text", "pair_text"], ["pretrian"]
    args.accelerate_config = str(tmp_path / "nope.yaml")
    with pytest.raises(SystemExit) as refused:
        run_stages(args)
    message = str(refused.value)
    assert "listed more than once: ['pair_text']" in message
    assert "`accelerate_stages` ['pretrian'] names no stage" in message and "nope.yaml does not exist" in message
    nested.write_text(yaml.safe_dump({"ladders": [], "output_dir": str(tmp_path / "out" / "text")}))
    args.stages, args.accelerate_stages, args.accelerate_config = ["pair_text", "ladder_compare"], [], None
    with pytest.raises(SystemExit, match="'pair_text' and 'ladder_compare' both write"):
        run_stages(args)
    args.stages = []
    with pytest.raises(SystemExit, match="`stages` is empty"):
        run_stages(args)

    args.stages = ["pair_text", "transfer"]
    run_stages(args)
    recorded = (tmp_path / "out" / "transfer" / "summary.json").read_text()
    args.overwrite, args.dry_run = True, True
    run_stages(args)
    assert _runs(tmp_path / "out" / "text") == 1  # --overwrite --dry_run only says what it would remove
    assert (tmp_path / "out" / "transfer" / "summary.json").read_text() == recorded  # nor replaces the record


def test_a_stage_reads_an_earlier_output_through_any_path_form_in_its_settings():
    from unicorn_hf.stages.runner import _reads

    assert _reads({"image_tower_encoder": "local-dir:outputs/tiny/encoder"}, Path("outputs/tiny/encoder"))
    assert _reads({"ladders": ["seed 0=outputs/a/ladder/ladder.json"]}, Path("outputs/a/ladder"))
    assert _reads({"nested": {"captions_path": "outputs/a"}}, Path("outputs/a"))
    assert not _reads({"model_name_or_path": "outputs/ab"}, Path("outputs/a"))  # a sibling with a longer name
    assert not _reads({"output_dir": "outputs/a/x"}, Path("outputs/a"))  # where it writes is not what it reads
