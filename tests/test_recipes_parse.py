"""Every YAML under recipes/ parses into its script's dataclasses, so a renamed field cannot leave a stale config.

A YAML is matched to its script by file name (`pretrain.yaml` -> `recipes/pretrain.py`, ...). A YAML whose script
does not exist fails the test: it is a config nothing can run.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import sys
from pathlib import Path

import pytest
import torch
import yaml

from unicorn_hf.stages.runner import STAGE_SCRIPTS, stage_kind


RECIPES = Path(__file__).resolve().parents[1] / "recipes"
# File names whose script is neither `<name>.py` nor the quickstart's stage kind of the name (unicorn_hf.stages.runner:
# `pretrain_plain_seed1.yaml` -> pretrain.py, `sft_ladder.yaml` -> ladder.py, `encoder.yaml` -> train_encoder.py).
SCRIPT_FOR = {
    "scale": "../bench/paper_scale",  # recipes/unicorn-8b/scale.yaml: the paper-scale estimate's inputs
    "experiment": "experiments/does_it_see/run",
    "arms_ladder": "ladder",  # recipes/concept_titles/arms_ladder.yaml: the ladder of one transfer arm
    "experiment_cpu": "quickstart",  # recipes/concept_titles/experiment_{cpu,gpu}.yaml: make experiment's budgets
    "experiment_gpu": "quickstart",
}
# YAMLs that no argument parser reads: the experiment's arms (Plan.load, tests/test_experiment.py parses them).
NOT_SCRIPT_CONFIGS = {"plan.yaml"}
CONFIGS = sorted(path for path in RECIPES.glob("**/*.yaml") if path.name not in NOT_SCRIPT_CONFIGS)


def script_for(config: Path) -> Path:
    if config.stem in SCRIPT_FOR:
        return RECIPES / f"{SCRIPT_FOR[config.stem]}.py"
    try:
        return RECIPES / STAGE_SCRIPTS[stage_kind(config.stem)]
    except ValueError:  # not a stage: a script of its own name
        return RECIPES / f"{config.stem}.py"


def load_script(path: Path):
    spec = importlib.util.spec_from_file_location(f"recipe_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve string annotations through sys.modules
    spec.loader.exec_module(module)
    return module


def test_recipes_have_configs():
    assert {"pretrain.yaml", "sft.yaml"} <= {path.name for path in CONFIGS}


@pytest.mark.parametrize("config", CONFIGS, ids=[str(p.relative_to(RECIPES)) for p in CONFIGS])
def test_yaml_parses_into_the_scripts_dataclasses(config: Path):
    script_path = script_for(config)
    assert script_path.is_file(), f"{config} has no script: expected {script_path}"
    parser = load_script(script_path).make_parser()
    args = ["--config", str(config)]
    # transformers refuses bf16 without a GPU unless use_cpu is set: parse the GPU recipes as on a CPU machine.
    takes_use_cpu = any("use_cpu" in {f.name for f in dataclasses.fields(t)} for t in parser.dataclass_types)
    if takes_use_cpu and not torch.cuda.is_available():
        args += ["--use_cpu", "true"]
    parsed = parser.parse_args_and_config(args=args)
    # Every key of the YAML landed in one of the dataclasses (TrlParser errors on unknown keys, check it anyway).
    fields = {f.name for obj in parsed if dataclasses.is_dataclass(obj) for f in dataclasses.fields(obj)}
    keys = set(yaml.safe_load(config.read_text()) or {}) - {"env"}
    assert keys <= fields, f"{config}: keys no dataclass knows: {sorted(keys - fields)}"
