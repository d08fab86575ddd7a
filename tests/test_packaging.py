"""The package boundary: a wheel built by `pip install .` (not editable) carries what the library runs from outside
the package in a checkout (recipes, accelerate configs, card templates), and the quickstart and the model card work
from it in an empty folder; no import circle; no test fixture inside the library.

The wheel is built without build isolation (offline) and unpacked on `PYTHONPATH` (what installing a pure-Python
wheel amounts to), so the checkout is never imported by the child processes.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest


REPO = Path(__file__).resolve().parents[1]
_NOT_SOURCE = {".git", ".venv", "outputs", "build", "dist", "__pycache__", ".pytest_cache", ".ruff_cache"}


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The wheel of this checkout, unpacked into a site folder."""
    source = tmp_path_factory.mktemp("source")
    shutil.copytree(
        REPO,
        source,
        dirs_exist_ok=True,
        ignore=lambda d, names: [n for n in names if n in _NOT_SOURCE or n.endswith(".egg-info")],
    )
    wheels = tmp_path_factory.mktemp("wheels")
    build = [sys.executable, "-m", "pip", "wheel", "--no-build-isolation", "--no-deps", "-q", "-w", str(wheels), "."]
    result = subprocess.run(build, cwd=source, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    (wheel,) = wheels.glob("unicorn_hf-*.whl")
    site = tmp_path_factory.mktemp("site")
    zipfile.ZipFile(wheel).extractall(site)
    return site


def run_installed(site: Path, cwd: Path, code: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(site)}
    return subprocess.run(
        [sys.executable, *args] if not code else [sys.executable, "-c", textwrap.dedent(code), *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def _tracked(*folders: str) -> list[str]:
    """The files git tracks under `folders` of the checkout (what a wheel built from a clone must carry)."""
    listing = subprocess.run(["git", "ls-files", *folders], cwd=REPO, capture_output=True, text=True, check=False)
    if listing.returncode != 0:
        pytest.skip("not a git checkout: the tracked files cannot be listed")
    return listing.stdout.split()


def test_wheel_ships_recipes_configs_templates_and_the_remote_code(installed):
    """Every tracked file of recipes/, accelerate_configs/ and model_cards/ is in the wheel as
    `unicorn_hf/_<folder>/...` (a recipe file added without a package-data pattern fails here), and so are the
    library's data files and the three remote-code modules a checkpoint ships."""
    package = installed / "unicorn_hf"
    bundled = _tracked("recipes", "accelerate_configs", "model_cards")
    assert len(bundled) > 20 and "recipes/tiny/quickstart.yaml" in bundled
    missing = [path for path in bundled if not (package / f"_{path}").is_file()]
    assert not missing, f"tracked but not in the wheel (setup.py PACKAGE_DATA): {missing}"
    library = [path for path in _tracked("unicorn_hf") if path.startswith("unicorn_hf/")]
    missing = [path for path in library if not (installed / path).is_file()]
    assert not missing, f"library files not in the wheel: {missing}"
    for module in ("configuration_unicorn.py", "modeling_unicorn.py", "processing_unicorn.py"):  # remote code
        assert (package / "modeling" / module).is_file(), module
    assert (
        not (package / "training" / "synthetic.py").exists() and not (package / "evaluation" / "testing.py").exists()
    )


def test_quickstart_runs_from_the_installed_package_in_an_empty_folder(installed, tmp_path):
    """`python -m unicorn_hf.stages.runner --config recipes/tiny/quickstart.yaml` in a folder with nothing in it: the
    packaged recipe files are copied there and every stage command points at them (a dry run: the stages
    themselves are the quickstart test's business)."""
    result = run_installed(
        installed, tmp_path, "", "-m", "unicorn_hf.stages.runner", "--config", "recipes/tiny/quickstart.yaml",
        "--dry_run", "true",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "recipes" / "tiny" / "seeds.jsonl").is_file()
    assert (tmp_path / "accelerate_configs" / "cpu.yaml").is_file()
    log = result.stdout + result.stderr
    assert str(REPO) not in log  # nothing of the checkout is used
    stages = [line for line in log.splitlines() if "would run:" in line]
    assert len(stages) >= 7 and all("recipes/" in line for line in stages)
    assert any("recipes/evaluate_vlm.py --config recipes/tiny/evaluate.yaml" in line for line in stages)


def test_model_card_renders_from_the_installed_template(installed, tmp_path):
    """What `--update_model_card` does, with the template the wheel ships (no `model_cards/` folder around)."""
    code = """
        import json, sys
        from pathlib import Path
        import torch
        from safetensors.torch import save_file
        import unicorn_hf
        from unicorn_hf import cards
        from unicorn_hf.utils import resources

        assert resources.checkout_root() is None and "site" in str(cards.default_template())
        folder = Path(sys.argv[1])
        folder.mkdir()
        config = {"model_type": "unicorn", "encoder_id": "open_clip:x", "embed_dim": 4, "projector_type": "linear",
                  "num_image_tokens": 1, "text_config": {"model_type": "llama"}}
        (folder / "config.json").write_text(json.dumps(config))
        save_file({"modality_statistics.text_mean": torch.ones(4), "modality_statistics.image_mean": torch.zeros(4)},
                  str(folder / "model.safetensors"))
        results = {"benchmarks": {"pope": {"mean_modes": {"eval": {"metrics": {"accuracy": 0.5}, "n": 4}}}},
                   "headline": {}}
        card = cards.update_model_card(folder, results)
        print(unicorn_hf.__file__)
        assert (folder / "README.md").is_file()
    """
    result = run_installed(installed, tmp_path, code, str(tmp_path / "checkpoint"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert str(installed) in result.stdout


def _module_level_imports(path: Path) -> set[str]:
    """The `unicorn_hf` modules a file imports at module level (function-level imports run later, when called)."""
    tree = ast.parse(path.read_text())
    names = set()
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
    return {name for name in names if name.startswith("unicorn_hf")}


def test_no_import_cycle_in_the_library():
    """No two library modules import each other, directly or around a circle, at module level."""
    modules = {}
    for path in (REPO / "unicorn_hf").rglob("*.py"):
        parts = path.relative_to(REPO).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph = {
        name: {i for i in _module_level_imports(path) if i in modules and i != name} for name, path in modules.items()
    }
    for name in graph:  # a package's own __init__ is imported before any of its modules: not an edge back
        graph[name] = {i for i in graph[name] if not name.startswith(i + ".")}
    visiting, done, cycles = [], set(), []

    def visit(name):
        if name in done:
            return
        if name in visiting:
            cycles.append([*visiting[visiting.index(name) :], name])
            return
        visiting.append(name)
        for other in sorted(graph[name]):
            visit(other)
        visiting.pop()
        done.add(name)

    for name in sorted(graph):
        visit(name)
    assert cycles == [], cycles


def test_the_library_ships_no_test_fixtures():
    names = {path.relative_to(REPO / "unicorn_hf").as_posix() for path in (REPO / "unicorn_hf").rglob("*.py")}
    assert not {"training/synthetic.py", "evaluation/testing.py", "synthesis/testing.py"} & names
    assert json.loads(json.dumps(sorted(names)))  # the package still has its modules


REMOTE_CODE_IMPORTS = {"__future__", "collections", "dataclasses", "json", "math", "os", "re", "typing", "torch",
                       "transformers"}  # fmt: skip


def test_the_remote_code_needs_nothing_of_the_library():
    """What `push_to_hub` ships as remote code imports only torch, transformers and its sibling files, and no message
    of it sends a user to `unicorn_hf` (absent wherever remote code runs). Docstrings may point developers there."""
    folder = REPO / "unicorn_hf" / "modeling"
    for path in sorted(folder.glob("*.py")):
        if path.name == "__init__.py":  # the package's face, not shipped
            continue
        tree = ast.parse(path.read_text())
        docstrings = {
            id(node.body[0].value)
            for node in ast.walk(tree)
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef) and node.body
            and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)
        }  # fmt: skip
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 0:
                assert node.module.split(".")[0] in REMOTE_CODE_IMPORTS, (path.name, node.module)
            if isinstance(node, ast.Import):
                assert {alias.name.split(".")[0] for alias in node.names} <= REMOTE_CODE_IMPORTS, path.name
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
                assert "unicorn_hf" not in node.value, (path.name, node.lineno, node.value)


def test_the_readme_layout_names_every_library_folder():
    """The README's layout section lists each folder and top-level module of `unicorn_hf`, and nothing that is gone."""
    readme = (REPO / "README.md").read_text()
    layout = readme[readme.index("## Layout") :].split("```")[1]
    listed = set(re.findall(r"^  ([a-z_]+(?:/|\.py))", layout, flags=re.MULTILINE)) - {"experiments/"}
    library = REPO / "unicorn_hf"
    present = {f"{p.name}/" for p in library.iterdir() if p.is_dir() and (p / "__init__.py").is_file()}
    present |= {p.name for p in library.glob("*.py") if p.name != "__init__.py"}
    assert listed | {"experiments/"} >= present and listed <= present, (
        sorted(present - listed),
        sorted(listed - present),
    )
