"""`make experiment`'s named budgets (recipes/concept_titles/experiment_{cpu,gpu}.yaml): every stage they name exists
and runs a known script, and each budget-specific YAML differs from the recipe YAML it copies only in what the budget
says it changes (device, seed, paths), so their figures compare with the recipe's."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from unicorn_hf.stages.runner import (
    StageRunArguments,
    check_stages,
    script_path,
    stage_config,
    stage_kind,
    stage_output_dir,
)


RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "concept_titles"
# (budget YAML, the recipe YAML it copies, the keys it may change)
SEEDS = ("", "_seed1")
TWINS = [
    ("pretrain_plain_seed1.yaml", "pretrain_plain.yaml", {"seed", "output_dir"}),
    ("ladder_plain.yaml", "ladder.yaml", {"model_name_or_path", "output_dir"}),
    ("ladder_plain_seed1.yaml", "ladder.yaml", {"model_name_or_path", "output_dir"}),
    *[(f"gpu/pretrain{s}.yaml", "pretrain.yaml", {"seed", "output_dir", "use_cpu"}) for s in SEEDS],
    *[(f"gpu/sft{s}.yaml", "sft.yaml", {"seed", "output_dir", "use_cpu", "model_name_or_path"}) for s in SEEDS],
    *[(f"gpu/ladder{s}.yaml", "ladder.yaml", {"model_name_or_path", "output_dir", "device"}) for s in SEEDS],
    *[(f"gpu/sft_ladder{s}.yaml", "sft_ladder.yaml", {"model_name_or_path", "output_dir", "device"}) for s in SEEDS],
]


def _budget(name: str) -> StageRunArguments:
    config = yaml.safe_load((RECIPE / name).read_text())
    config["recipe_dir"] = str(RECIPE.parents[1] / config["recipe_dir"])
    config["stages"] = [str(RECIPE.parents[1] / s) if s.endswith(".yaml") else s for s in config["stages"]]
    return StageRunArguments(**config)


@pytest.mark.parametrize("budget", ["experiment_cpu.yaml", "experiment_gpu.yaml"])
def test_every_stage_of_a_budget_has_its_yaml_script_and_own_output_folder(budget):
    args = _budget(budget)
    check_stages(args)  # every YAML exists and has a kind; no stage writes inside another's output_dir (--overwrite)
    for stage in args.stages:
        assert script_path(args, stage).is_file()
    # Each seed trains its own checkpoint and its ladder reads that one.
    seeds = {stage_config(args, stage)["seed"] for stage in args.stages if stage_kind(stage) == "pretrain"}
    assert seeds == {0, 1}
    trained = {str(stage_output_dir(args, s)) for s in args.stages if stage_kind(s) in ("pretrain", "sft")}
    probed = [stage_config(args, s)["model_name_or_path"] for s in args.stages if stage_kind(s).endswith("ladder")]
    assert len(probed) >= 2 and set(probed) <= trained


@pytest.mark.parametrize(("copy", "original", "changed"), TWINS, ids=[twin[0] for twin in TWINS])
def test_a_budget_yaml_changes_only_what_it_says(copy, original, changed):
    copied = yaml.safe_load((RECIPE / copy).read_text())
    source = yaml.safe_load((RECIPE / original).read_text())
    differing = {key for key in copied.keys() | source.keys() if copied.get(key) != source.get(key)}
    assert differing <= changed, f"{copy} differs from {original} in {sorted(differing - changed)}"
    assert copied["output_dir"] != source["output_dir"]
