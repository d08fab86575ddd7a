"""distilabel pipelines as pure builders that take the LLM as an argument (open-r1 style).

The builders only wire steps; the LLM, its resources and the prompt come from the caller, so the same pipeline runs
on SmolLM2 on a laptop CPU and on Qwen2.5-72B with vLLM on 8 GPUs. The seeds/captions are passed to
`pipeline.run(dataset=...)`. distilabel caches every finished batch under `cache_dir/<name>/`: a re-run with the
same name and steps resumes where it stopped instead of regenerating.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

from distilabel.models.llms import LLM
from distilabel.pipeline import Pipeline
from distilabel.steps import StepResources
from distilabel.steps.tasks import ChatGeneration, TextGeneration


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


def run_pipeline(
    pipeline: Pipeline,
    rows: list[dict],
    batch_size: int,
    use_cache: bool,
    ray: bool = False,
    ray_address: str | None = None,
) -> tuple[list[dict], Path]:
    """Run and return (output rows, path of the executed pipeline.yaml). Output rows may come back in another order
    and rows whose generation failed carry `generation=None` (distilabel logs the error and keeps going).

    `ray=True` runs the same steps as distilabel's `RayPipeline`: each step replica becomes a Ray actor placed by its
    `StepResources` (replicas, GPUs), on the cluster at `ray_address` (or `RAY_ADDRESS`, or a local one).

    The local pipeline forks its step workers: call this before the calling process runs any torch computation,
    since a child forked after torch's OpenMP pool has been used deadlocks on CPU (libgomp is not fork-safe)."""
    shutdown_ray = False
    if ray:
        import ray as ray_module  # the `ray` extra; distilabel raises a clear ImportError without it

        shutdown_ray = not ray_module.is_initialized()  # a cluster connection this run opens, it closes
        pipeline = pipeline.ray(ray_head_node_url=ray_address)
    # distilabel routes the root logger through a queue that it closes when the run ends: restore our handlers.
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        distiset = pipeline.run(dataset=rows, dataset_batch_size=batch_size, use_cache=use_cache)
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        if shutdown_ray:
            ray_module.shutdown()
    if not distiset or "default" not in distiset:
        raise RuntimeError(f"distilabel pipeline {pipeline.name!r} returned no data; see the log of the run above")
    return distiset["default"]["train"].to_list(), distiset.pipeline_path
