"""Run a whole recipe folder stage by stage, exactly as a user would type each command, then summarise.

Each stage is its own process (`python recipes/<script> --config <recipe_dir>/<stage>.yaml`, training stages under
`accelerate launch`), so a stage's memory is released before the next starts and its log reads like a manual run.
A stage that finished leaves a `.stage_done.json` marker in its `output_dir` and is skipped on the next run.

A stage is named by its YAML: `pretrain` is `<recipe_dir>/pretrain.yaml`, and an entry ending in `.yaml` is that file
(`recipes/tiny/encoder.yaml`: a stage another recipe folder owns). The script is the one of the stage kind the
file's name starts with: `pretrain_plain_seed1.yaml` runs `pretrain.py`, `sft_ladder.yaml` runs `ladder.py`.

From a checkout: `python recipes/quickstart.py --config recipes/tiny/quickstart.yaml` (or `make quickstart`). From an
installed wheel, in any working directory: `python -m unicorn_hf.stages.runner --config recipes/tiny/quickstart.yaml`
copies the packaged `recipes/` and `accelerate_configs/` there first (`unicorn_hf.utils.resources.materialize`), so
every relative path of the recipe resolves as in a checkout and the outputs land under `./outputs`.
"""

from __future__ import annotations

import json
import logging
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from trl import TrlParser

from unicorn_hf.stages.markers import DONE_MARKER, settings_digest, write_marker
from unicorn_hf.stages.report import StageResult, render_summary
from unicorn_hf.utils.logging import setup_logging
from unicorn_hf.utils.paths import portable_command, portable_record
from unicorn_hf.utils.processes import parent_death_signal
from unicorn_hf.utils.resources import bundled_dir, checkout_root, materialize


logger = logging.getLogger(__name__)

# Stage kind -> the script that reads its YAML. A YAML named `<kind>.yaml` or `<kind>_<variant>.yaml` is of that kind.
STAGE_SCRIPTS: dict[str, str] = {
    "encoder": "train_encoder.py",
    "captions": "synthesize_captions.py",
    "instructions": "synthesize_instructions.py",
    "pair_text": "pair_text.py",
    "transfer": "transfer.py",
    "pretrain": "pretrain.py",
    "sft": "sft.py",
    "sees": "sees.py",
    "ladder": "ladder.py",
    "sft_ladder": "ladder.py",  # the same script on the SFT checkpoint (questions instead of candidates)
    "evaluate": "evaluate_vlm.py",
    "ladder_compare": "ladder_compare.py",  # several ladders side by side (seeds, arms): comparison.{json,md,png}
}


@dataclass
class StageRunArguments:
    recipe_dir: str = field(metadata={"help": "Folder with one <stage>.yaml per stage, e.g. recipes/tiny."})
    stages: list[str] = field(
        metadata={
            "help": "Stages to run, in order: a YAML's name in recipe_dir (`pretrain`, `pretrain_plain`) or a path "
            f"ending in .yaml; each name starts with a stage kind of {sorted(STAGE_SCRIPTS)}."
        }
    )
    accelerate_stages: list[str] = field(
        default_factory=list,
        metadata={"help": "Stages (or kinds: `pretrain` covers `pretrain_plain`) run under `accelerate launch`."},
    )
    accelerate_config: str | None = field(default=None, metadata={"help": "accelerate config for those stages."})
    overwrite: bool = field(default=False, metadata={"help": "Delete each stage's output_dir and run it again."})
    summary_file: str | None = field(default=None, metadata={"help": "Where to write the run summary as JSON."})
    dry_run: bool = field(default=False, metadata={"help": "Log each stage's command without running it."})


def stage_kind(stage: str) -> str:
    """The stage kind of a stage entry (a key of `STAGE_SCRIPTS`): its YAML's name, or the longest kind that name
    starts with followed by `_` (`ladder_plain_seed1` -> `ladder`, `sft_ladder` -> `sft_ladder`). Raises `ValueError`
    naming the entry and the kinds when none fits."""
    name = Path(stage).stem if _is_path(stage) else stage
    if name in STAGE_SCRIPTS:
        return name
    kinds = [kind for kind in STAGE_SCRIPTS if name.startswith(kind + "_")]
    if not kinds:
        raise ValueError(
            f"Stage {stage!r}: its name must be a stage kind or start with one and `_`; kinds: {sorted(STAGE_SCRIPTS)}"
        )
    return max(kinds, key=len)


def _is_path(stage: str) -> bool:
    return stage.endswith((".yaml", ".yml"))


def stage_config_path(args: StageRunArguments, stage: str) -> Path:
    """`<recipe_dir>/<stage>.yaml`, or the entry itself when it is a path ending in `.yaml` / `.yml`."""
    return Path(stage) if _is_path(stage) else Path(args.recipe_dir) / f"{stage}.yaml"


def script_path(args: StageRunArguments, stage: str) -> Path:
    """The stage's script in the nearest folder above the recipe folder that has it (`recipes/tiny` and
    `recipes/concept_titles/gpu` -> `recipes/<script>`: a checkout, or the copy `materialize` wrote), else the one
    shipped with the package. Raises `ValueError` for an unknown stage kind."""
    script = STAGE_SCRIPTS[stage_kind(stage)]
    for folder in Path(args.recipe_dir).parents:
        if (folder / script).is_file():
            return folder / script
    return bundled_dir("recipes") / script


def stage_command(args: StageRunArguments, stage: str) -> list[str]:
    script = str(script_path(args, stage))
    config = str(stage_config_path(args, stage))
    if stage in args.accelerate_stages or stage_kind(stage) in args.accelerate_stages:
        launcher = [sys.executable, "-m", "accelerate.commands.launch"]
        if args.accelerate_config:
            launcher += ["--config_file", args.accelerate_config]
        return [*launcher, script, "--config", config]
    return [sys.executable, script, "--config", config]


def stage_config(args: StageRunArguments, stage: str) -> dict:
    """The stage's YAML, parsed. Raises `FileNotFoundError` naming the file when it is missing."""
    config_path = stage_config_path(args, stage)
    if not config_path.is_file():
        raise FileNotFoundError(f"Stage {stage!r} has no config: {config_path} is missing.")
    return yaml.safe_load(config_path.read_text()) or {}


def stage_output_dir(args: StageRunArguments, stage: str) -> Path:
    config = stage_config(args, stage)
    if "output_dir" not in config:
        raise ValueError(
            f"{stage_config_path(args, stage)} has no `output_dir`; every stage writes only under its output_dir."
        )
    return Path(config["output_dir"])


def config_digest(args: StageRunArguments, stage: str) -> str:
    """`unicorn_hf.stages.markers.settings_digest` of the stage's parsed YAML, recorded in its marker."""
    return settings_digest(stage_config(args, stage))


def check_finished_stage(args: StageRunArguments, stage: str, marker: Path) -> None:
    """A finished stage is skipped only if it was made with the settings its YAML holds now.

    Raises `SystemExit` naming the stage, the YAML and `--overwrite` when they changed since (e.g. a recipe whose
    default changed under an existing output folder). A marker written before digests were recorded cannot tell:
    a warning says so and the stage is skipped, as before.
    """
    record = json.loads(marker.read_text())
    config_path = stage_config_path(args, stage)
    if "config_sha256" not in record:
        logger.warning("[%s] %s does not record its settings: cannot tell whether %s changed since", stage, marker,
                       config_path)  # fmt: skip
    elif record["config_sha256"] != config_digest(args, stage):
        raise SystemExit(
            f"Stage {stage!r}: {marker.parent} was made with other settings than {config_path} holds now. "
            f"Re-run with --overwrite to redo the finished stages, or point that stage's output_dir elsewhere."
        )


# What a stage's summary keeps of its ladder.json: the per-item scores stay in the stage's folder.
LADDER_SUMMARY_KEYS = ("num_items", "scorings", "chance", "summary")


def collect_summary(output_dir: Path, skip: Path | None = None) -> dict:
    """What a stage left for the summary: drops, stage summary, training record, eval results, encoder metrics, the
    ladder's summary. `skip`: a file not to read (the run's own summary_file, when it lies in a stage's folder)."""
    summary: dict = {}
    for name in ("summary.json", "drops.json", "unicorn_training.json", "results.json", "metrics.json", "ladder.json"):
        path = output_dir / name
        if path.is_file() and (skip is None or path.resolve() != skip.resolve()):
            summary[name.removesuffix(".json")] = json.loads(path.read_text())
    if "ladder" in summary:
        summary["ladder"] = {key: summary["ladder"][key] for key in LADDER_SUMMARY_KEYS if key in summary["ladder"]}
    return summary


def _inputs(config: object) -> list[str]:
    """Every string value of a parsed YAML, nested ones included (paths a stage reads)."""
    if isinstance(config, dict):
        return [text for value in config.values() for text in _inputs(value)]
    if isinstance(config, list):
        return [text for value in config for text in _inputs(value)]
    return [config] if isinstance(config, str) else []


def _reads(config: dict, folder: Path) -> bool:
    """Whether a stage's settings name `folder` or a path inside it, in any spelling (`./x`, absolute) and form
    (`NAME=path`, `local-dir:path`). `output_dir` is where it writes, not what it reads."""
    folder = Path(folder).resolve()
    for text in _inputs({key: value for key, value in config.items() if key != "output_dir"}):
        for path in {text, text.partition("=")[2], text.partition(":")[2]} - {""}:
            resolved = Path(path).resolve()
            if resolved == folder or folder in resolved.parents:
                return True
    return False


def _finished_at(marker: Path) -> float:
    """When a stage finished: the marker's record, else (a marker of an older runner) its file time."""
    return json.loads(marker.read_text()).get("finished_at") or marker.stat().st_mtime


def stale_inputs(
    args: StageRunArguments, stage: str, marker: Path, earlier: list[str], remade: set[str] | None = None
) -> list[str]:
    """The earlier stages of this run whose output `stage` reads and that finished after it did, have not finished,
    or are in `remade` (run, or in a dry run to be run, by this invocation): its output was made from inputs that are
    remade since, so it is redone."""
    config, finished = stage_config(args, stage), _finished_at(marker)
    markers = {before: stage_output_dir(args, before) / DONE_MARKER for before in earlier}
    return [
        before
        for before, before_marker in markers.items()
        if _reads(config, before_marker.parent)
        and (before in (remade or ()) or not before_marker.is_file() or _finished_at(before_marker) > finished)
    ]


def check_stages(args: StageRunArguments) -> None:
    """Every stage entry checked before any runs: its YAML exists, its name has a stage kind, it has an output_dir,
    and no two stages write the same folder or one inside another's. Raises `SystemExit` listing every problem."""
    problems, folders = [], {}
    for stage in args.stages:
        config_path = stage_config_path(args, stage)
        try:
            if _is_path(stage) and not config_path.is_file():  # a mistyped path: say so, not "no stage kind"
                raise ValueError(f"Stage {stage!r}: {config_path} does not exist")
            stage_kind(stage)
            if not config_path.is_file():
                raise ValueError(f"Stage {stage!r}: {config_path} does not exist")
            folders[stage] = stage_output_dir(args, stage)
        except ValueError as error:
            problems.append(str(error))
    if not args.stages:
        problems.append("`stages` is empty")
    repeated = sorted({stage for stage in args.stages if args.stages.count(stage) > 1})
    if repeated:
        problems.append(f"listed more than once: {repeated}")
    named = set(args.stages) | {stage_kind(stage) for stage in folders}
    unknown = sorted(set(args.accelerate_stages) - named)
    if unknown:
        problems.append(f"`accelerate_stages` {unknown} names no stage of this run nor its kind")
    if args.accelerate_config and not Path(args.accelerate_config).is_file():
        problems.append(f"`accelerate_config` {args.accelerate_config} does not exist")
    items = list(folders.items())
    for index, (stage, folder) in enumerate(items):
        for other, other_folder in items[index + 1 :]:
            if folder == other_folder:
                problems.append(f"{stage!r} and {other!r} both write {folder}")
            elif other_folder in folder.parents or folder in other_folder.parents:
                inner, outer = (stage, other) if other_folder in folder.parents else (other, stage)
                problems.append(f"{inner} writes inside the output_dir of {outer} ({folders[outer]})")
    if problems:
        raise SystemExit("The run's stages have problems; nothing was run:\n- " + "\n- ".join(problems))


def run_command(stage: str, command: list[str]) -> float:
    """Run a stage's command as a child process that dies with this one (a killed runner must not leave a stage
    writing its output_dir behind). Returns its wall seconds; raises `SystemExit` naming the stage, the exit code
    and the command to run it alone when it fails."""
    start = time.perf_counter()
    completed = subprocess.run(command, check=False, preexec_fn=parent_death_signal())
    seconds = time.perf_counter() - start
    if completed.returncode != 0:
        printable = shlex.join(command[1:] if command[0] == sys.executable else command)
        raise SystemExit(
            f"Stage {stage!r} failed with exit code {completed.returncode} after {seconds:.0f}s; its log is above. "
            f"Fix the cause, then re-run the same command: finished stages are skipped. To run this stage alone: "
            f"python {printable}"
        )
    return seconds


def run_stage(
    args: StageRunArguments, stage: str, earlier: list[str] | None = None, remade: set[str] | None = None
) -> StageResult:
    """Run one stage (its own process), or skip it when its marker says it finished with the same settings and no
    stage of `earlier` that it reads was remade since (`remade`: the stages this run ran, or in a dry run would run;
    this stage is added when it runs). Raises `SystemExit` when the stage fails or its settings changed."""
    remade = set() if remade is None else remade
    result = _run_stage(args, stage, earlier or [], remade)
    if result.seconds is not None or result.dry_run:
        remade.add(stage)
    result.kind = stage_kind(stage)
    return result


def _run_stage(args: StageRunArguments, stage: str, earlier: list[str], remade: set[str]) -> StageResult:
    command = stage_command(args, stage)
    printable = shlex.join(command[1:] if command[0] == sys.executable else command)
    output_dir = stage_output_dir(args, stage)
    marker = output_dir / DONE_MARKER
    summary_file = Path(args.summary_file) if args.summary_file else None
    if args.dry_run and (args.overwrite or not marker.is_file()):
        action = f"--overwrite would remove {output_dir}, then run" if args.overwrite else "would run"
        logger.info("[%s] %s: python %s", stage, action, printable)
        return StageResult(stage, printable, output_dir, None, {}, dry_run=True)
    if args.overwrite and output_dir.exists():
        logger.info("[%s] --overwrite: removing %s", stage, output_dir)
        shutil.rmtree(output_dir)
    if marker.is_file():
        check_finished_stage(args, stage, marker)
        stale = stale_inputs(args, stage, marker, earlier, remade)
        if stale and args.dry_run:
            logger.info("[%s] would run again (%s was remade since): python %s", stage, ", ".join(stale), printable)
            return StageResult(stage, printable, output_dir, None, {}, dry_run=True)
        if not stale:
            logger.info("[%s] finished earlier (%s), skipping; --overwrite redoes it", stage, marker)
            recorded = json.loads(marker.read_text()).get("seconds")
            summary = collect_summary(output_dir, summary_file)
            return StageResult(stage, printable, output_dir, None, summary, recorded_seconds=recorded)
        logger.info("[%s] finished earlier, but %s was remade since: running it again", stage, ", ".join(stale))
        marker.unlink()  # an interrupted re-run must not look finished
    logger.info("[%s] running: python %s", stage, printable)
    seconds = run_command(stage, command)
    recorded = portable_command(command[1:] if command[0] == sys.executable else command, output_dir)
    record = {"command": recorded, "seconds": round(seconds, 1)}
    write_marker(output_dir, record, stage_config(args, stage), keep_settings=False)
    logger.info("[%s] done in %.0fs -> %s", stage, seconds, output_dir)
    summary = collect_summary(output_dir, summary_file)
    return StageResult(stage, printable, output_dir, seconds, summary, recorded_seconds=seconds)


def run_stages(args: StageRunArguments) -> list[StageResult]:
    check_stages(args)
    start = time.perf_counter()
    remade: set[str] = set()
    results = [run_stage(args, stage, args.stages[:index], remade) for index, stage in enumerate(args.stages)]
    total = time.perf_counter() - start
    render_summary(results, total)
    if args.summary_file and not args.dry_run:  # a dry run must not replace the record of the real one
        folder = Path(args.summary_file).parent  # paths in the summary as `unicorn_hf.utils.paths` writes them
        recorded = [r.recorded_seconds for r in results]
        payload = {
            "total_seconds": round(total, 1),  # this run's: skipped stages cost nothing
            # every stage's own run, this one's or the one that finished it earlier (None: not run yet)
            "recorded_seconds": None if None in recorded else round(sum(recorded), 1),
            "stages": [
                {"name": r.name, "command": portable_command(shlex.split(r.command), folder)}
                | {"output_dir": str(r.output_dir), "seconds": r.seconds, "recorded_seconds": r.recorded_seconds}
                | {"summary": r.summary}
                for r in results
            ],
        }
        folder.mkdir(parents=True, exist_ok=True)
        payload = portable_record(json.loads(json.dumps(payload, default=str)), folder)
        Path(args.summary_file).write_text(json.dumps(payload, indent=2) + "\n")
    return results


def cli(argv: list[str] | None = None) -> list[StageResult]:
    """`python -m unicorn_hf.stages.runner --config <yaml> [...]`: from an installed package, a `--config` path that is
    not in the working directory but ships with the package (`recipes/tiny/quickstart.yaml`) makes the packaged
    recipe files appear there first, then the recipe runs as from a checkout."""
    setup_logging()
    argv = list(sys.argv[1:] if argv is None else argv)
    config = argv[argv.index("--config") + 1] if "--config" in argv[:-1] else None
    if config is not None and not Path(config).is_file() and checkout_root() != Path.cwd().resolve():
        parts = Path(config).parts
        if parts and parts[0] == "recipes" and (bundled_dir("recipes").joinpath(*parts[1:])).is_file():
            materialize(Path.cwd())
    (args,) = TrlParser((StageRunArguments,)).parse_args_and_config(args=argv)
    return run_stages(args)


if __name__ == "__main__":
    cli()
