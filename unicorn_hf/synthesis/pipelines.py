"""distilabel pipelines as pure builders that take the LLM as an argument (open-r1 style), and their resumable run.

The builders only wire steps; the LLM, its resources and the prompt come from the caller, so the same pipeline runs
on SmolLM2 on a laptop CPU and on Qwen2.5-72B with vLLM on 8 GPUs. The seeds/captions are passed to
`pipeline.run(dataset=...)`.

Resuming. distilabel writes every batch a step finishes to `cache_dir/<name>/steps_data/<step>_<signature>/
batch_<n>.json` as soon as the batch reaches the main process. Its own resume (`use_cache=True`) reloads a
`_BatchManager` snapshot instead, and after a hard kill that snapshot can miss the batch that was in flight, so the
re-run waits forever (distilabel issue #1065, open) or fails on a half-written JSON file. `run_pipeline` therefore
never resumes through the snapshot: it reads the finished batches and runs a fresh pipeline on the rows still
missing only. The pipeline name carries a fingerprint of its input rows and settings, so the missing rows get their
own name and cache folder, and an interrupted resume resumes again the same way.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from distilabel.models.llms import LLM
from distilabel.pipeline import Pipeline
from distilabel.steps import StepResources
from distilabel.steps.tasks import ChatGeneration, TextGeneration

from unicorn_hf.utils.processes import children_die_with_parent


logger = logging.getLogger(__name__)

# distilabel's name for the output folder of a step in `steps_data`: `<step name>_<40-hex step signature>`.
_STEP_DATA_DIR = r"^{step}_[0-9a-f]{{40}}$"


class StageInterrupted(RuntimeError):
    """A pipeline stopped before every row came back (Ctrl-C, or a step that stopped it): the stage must not write
    its output as if it were complete. The finished batches stay cached; the next run generates only the rest."""


class PrefilledChatGeneration(ChatGeneration):
    """distilabel's `ChatGeneration`, except that the conversation may end with an assistant message: the start of
    the reply ("prefill", e.g. `{"conversations": [{"question": "`), which the LLM continues and which the reply
    includes. `BatchedTransformersLLM` continues it; stage 2 leaves prefills out for the other backends."""

    def format_input(self, input: dict[str, Any]) -> list[dict[str, str]]:
        messages = input["messages"]
        if messages and messages[-1]["role"] == "assistant":
            super().format_input({**input, "messages": messages[:-1]})  # validates the conversation before it
            return messages
        return super().format_input(input)


def build_caption_pipeline(
    llm: LLM,
    template: str,
    name: str,
    cache_dir: str | Path,
    input_batch_size: int,
    resources: StepResources | None = None,
) -> Pipeline:
    """Stage 1: one `TextGeneration` step that renders `template` (Jinja, `{{ seed }}`) per seed row.

    Output columns added to each row: `generation`, `model_name`, `distilabel_metadata` (token statistics).
    """
    with Pipeline(
        name=name, description="Unicorn stage 1: caption seeds -> detailed captions", cache_dir=cache_dir
    ) as pipeline:
        TextGeneration(
            name="expand_caption",
            llm=llm,
            template=template,
            columns=["seed"],
            input_batch_size=input_batch_size,
            resources=resources or StepResources(),
        )
    return pipeline


def build_chat_pipeline(
    llm: LLM,
    name: str,
    cache_dir: str | Path,
    input_batch_size: int,
    resources: StepResources | None = None,
) -> Pipeline:
    """Stage 2: one `ChatGeneration` step over a `messages` column (the rendered task prompt, or in a repair round
    the prompt, the unusable reply and the repair request), optionally ending with a reply prefill."""
    with Pipeline(
        name=name, description="Unicorn stage 2: captions -> instruction dialogues", cache_dir=cache_dir
    ) as pipeline:
        PrefilledChatGeneration(
            name="generate_dialogue",
            llm=llm,
            input_batch_size=input_batch_size,
            resources=resources or StepResources(),
        )
    return pipeline


def data_fingerprint(rows: list[dict], *extra: object) -> str:
    """Short hash of the input rows and settings: part of the pipeline name, because distilabel's cache key covers
    the steps and their parameters but not the data, so new seeds must never be served from an old cache."""
    digest = hashlib.sha1()
    for row in rows:
        digest.update(json.dumps(row, sort_keys=True, default=str).encode())
    digest.update(json.dumps(extra, sort_keys=True, default=str).encode())
    return digest.hexdigest()[:12]


def finished_rows(cache_dir: str | Path, name: str, step_name: str) -> dict[str, dict]:
    """Rows that step `step_name` of pipeline `name` finished in an earlier run, by `id`, read from the batches
    distilabel wrote to `steps_data` (one JSON file per finished batch, any step signature: the pipeline name
    already pins the input rows, the prompt, the model and the generation settings).

    A batch file cut short by a kill is skipped with a warning: its rows are generated again."""
    steps_data = Path(cache_dir) / name / "steps_data"
    if not steps_data.is_dir():
        return {}
    pattern = re.compile(_STEP_DATA_DIR.format(step=re.escape(step_name)))
    rows: dict[str, dict] = {}
    for folder in sorted(p for p in steps_data.iterdir() if p.is_dir() and pattern.match(p.name)):
        for batch_file in sorted(folder.glob("batch_*.json")):
            try:
                batch = json.loads(batch_file.read_text())
                batch_rows = batch["data"][0]  # `_Batch.data`: one list of rows per predecessor
            except (json.JSONDecodeError, KeyError, IndexError, TypeError) as error:
                logger.warning("Skipping %s, cut short by an interruption (%s): its rows are generated again",
                               batch_file, error)  # fmt: skip
                continue
            rows.update({row["id"]: row for row in batch_rows if "id" in row})
    return rows


def run_pipeline(
    build: Callable[[str], Pipeline],
    rows: list[dict],
    *,
    name_prefix: str,
    settings: tuple,
    cache_dir: str | Path,
    batch_size: int,
    ray: bool = False,
    ray_address: str | None = None,
) -> tuple[list[dict], Path]:
    """Generate for every row of `rows` (each has a unique `id`), resuming from the batches of earlier runs.

    `build(name)` returns the pipeline (one generation step) named `name`, caching under `cache_dir`; the name is
    `<name_prefix>-<fingerprint of the rows and settings>`. Rows an earlier run finished are read back (see
    `finished_rows`); a pipeline runs on the rest only. Returns (one output row per input row, in no particular
    order, with `generation=None` where the backend failed; the path of the pipeline's YAML).

    Raises `StageInterrupted` when the pipeline stopped before every row came back (e.g. Ctrl-C), so that nothing
    downstream mistakes a partial result for a finished one.

    `ray=True` runs the same steps as distilabel's `RayPipeline`: each step replica becomes a Ray actor placed by its
    `StepResources` (replicas, GPUs), on the cluster at `ray_address` (or `RAY_ADDRESS`, or a local one).

    The local pipeline forks its step workers: call this before the calling process runs any torch computation,
    since a child forked after torch's OpenMP pool has been used deadlocks on CPU (libgomp is not fork-safe)."""
    cache_dir = Path(cache_dir)
    wanted = {row["id"] for row in rows}
    if len(wanted) != len(rows):
        raise ValueError(f"{name_prefix}: the input rows of a pipeline need unique `id`s (the unit of resumption)")
    first_name = f"{name_prefix}-{data_fingerprint(rows, *settings)}"
    first = build(first_name)
    (step_name,) = first.dag.leaf_steps  # the builders wire one generation step
    collected: dict[str, dict] = {}
    missing, name, pipeline = rows, first_name, first
    while missing:
        found = {key: row for key, row in finished_rows(cache_dir, name, step_name).items() if key in wanted}
        if found:
            logger.info("%s: %d of %d row(s) were generated by an earlier run (cache %s); %d left",
                        name, len(found), len(missing), cache_dir / name, len(missing) - len(found))  # fmt: skip
            collected.update(found)
            missing = [row for row in missing if row["id"] not in collected]
            if missing:  # the rest has its own name: an interrupted resume resumes again from there
                name = f"{name_prefix}-{data_fingerprint(missing, *settings)}"
                pipeline = build(name)
            continue
        # Nothing of `name` finished: whatever an earlier attempt left there (distilabel's batch-manager snapshot)
        # is what makes its own resume hang, so the attempt starts from a clean folder.
        shutil.rmtree(cache_dir / name, ignore_errors=True)
        _run(pipeline, missing, batch_size, ray, ray_address)
        found = {key: row for key, row in finished_rows(cache_dir, name, step_name).items() if key in wanted}
        collected.update(found)
        left = [row for row in missing if row["id"] not in collected]
        if left:
            raise StageInterrupted(
                f"distilabel pipeline {name!r} stopped after {len(missing) - len(left)} of {len(missing)} row(s): the "
                f"run was interrupted. The finished batches are kept in {cache_dir}; run the same command again to "
                "generate only the missing rows (--overwrite starts over)."
            )
        missing = []
    yaml_path = cache_dir / first_name / "pipeline.yaml"
    yaml_path.parent.mkdir(parents=True, exist_ok=True)
    first.save(path=yaml_path, format="yaml")  # the steps and their settings (secrets are excluded fields)
    return [collected[row["id"]] for row in rows], yaml_path


def _run(pipeline: Pipeline, rows: list[dict], batch_size: int, ray: bool, ray_address: str | None) -> None:
    """One fresh distilabel run (no snapshot resume); the rows are read back from `steps_data` by the caller."""
    shutdown_ray = False
    if ray:
        import ray as ray_module  # the `ray` extra; distilabel raises a clear ImportError without it

        shutdown_ray = not ray_module.is_initialized()  # a cluster connection this run opens, it closes
        pipeline = pipeline.ray(ray_head_node_url=ray_address)
    # distilabel routes the root logger through a queue that it closes when the run ends, and installs a SIGINT
    # handler that it never removes: restore both, so logging and Ctrl-C work as before once the run is over.
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    main_thread = threading.current_thread() is threading.main_thread()
    sigint = signal.getsignal(signal.SIGINT) if main_thread else None
    try:
        with children_die_with_parent():  # a killed stage leaves no step worker behind
            pipeline.run(dataset=rows, dataset_batch_size=batch_size, use_cache=False)
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        if main_thread:
            signal.signal(signal.SIGINT, sigint)
        if shutdown_ray:
            ray_module.shutdown()


def reset_cache(cache_dir: str | Path) -> None:
    """`--overwrite`: forget every earlier generation of the stage (all pipeline names under `cache_dir`)."""
    if Path(cache_dir).exists():
        logger.info("--overwrite: removing the generation cache %s", cache_dir)
        shutil.rmtree(cache_dir)
