"""Stage 1: caption seeds -> detailed captions -> filtered, de-duplicated captions dataset (config `captions`)."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from unicorn_hf.data_contract import CAPTIONS_COLUMN_DESCRIPTIONS, CAPTIONS_CONFIG
from unicorn_hf.synthesis.cards import (
    CACHE_DIRNAME,
    arguments_dict,
    card_body,
    drops_markdown,
    push_stage_folder,
    stats_markdown,
    write_stage_folder,
)
from unicorn_hf.synthesis.config import CaptionArguments, LLMArguments, OutputArguments, SeedArguments
from unicorn_hf.synthesis.filters import filter_captions
from unicorn_hf.synthesis.llms import build_llm, check_backend, generation_kwargs, model_identity, step_resources
from unicorn_hf.synthesis.pipelines import build_caption_pipeline, reset_cache, run_pipeline
from unicorn_hf.synthesis.prompt_files import load_prompt, prompt_path
from unicorn_hf.synthesis.seeds import load_seeds
from unicorn_hf.synthesis.stats import text_statistics
from unicorn_hf.utils.drops import DropLog


logger = logging.getLogger(__name__)


def output_tokens(row: dict) -> int | None:
    """Generated token count from distilabel's per-row statistics (None when the backend reports none)."""
    metadata = row.get("distilabel_metadata") or {}
    stats = next((value for key, value in metadata.items() if key.startswith("statistics_")), None) or {}
    tokens = stats.get("output_tokens")
    return tokens[0] if isinstance(tokens, list) and tokens else tokens


def synthesize_captions(
    seed_args: SeedArguments, caption_args: CaptionArguments, llm_args: LLMArguments, out_args: OutputArguments
) -> dict:
    """Run stage 1 end to end and write the Hub-ready folder; returns the summary."""
    start = time.perf_counter()
    seeds, seed_drops = load_seeds(seed_args)
    template = load_prompt(caption_args.prompt)
    check_backend(llm_args)
    gen = generation_kwargs(llm_args)
    cache_dir = Path(out_args.output_dir) / CACHE_DIRNAME
    if out_args.overwrite:
        reset_cache(cache_dir)
    generated, pipeline_yaml = run_pipeline(
        lambda name: build_caption_pipeline(
            build_llm(llm_args),
            template=template,
            name=name,
            cache_dir=cache_dir,
            input_batch_size=llm_args.input_batch_size,
            resources=step_resources(llm_args),
        ),
        seeds,
        name_prefix="unicorn-captions",
        settings=(template, model_identity(llm_args), gen),
        cache_dir=cache_dir,
        batch_size=llm_args.input_batch_size,
        ray=out_args.ray,
        ray_address=out_args.ray_address,
    )

    drops = DropLog(stage="captions", rows_in=len(seeds))
    candidates = [{**row, "output_tokens": output_tokens(row)} for row in generated]
    kept = filter_captions(candidates, caption_args, llm_args.max_new_tokens, drops)
    kept.sort(key=lambda row: row["id"])
    rows = [
        {
            "id": row["id"],
            "seed": row["seed"],
            "seed_source": row["seed_source"],
            "caption": row["caption"],
            "model_name": llm_args.model_name_or_path,
        }
        for row in kept
    ]
    stats = text_statistics(row["caption"] for row in rows)
    if not rows:  # record why before failing: the generations stay in the distilabel cache
        Path(out_args.output_dir).mkdir(parents=True, exist_ok=True)
        drops_json = json.dumps([seed_drops.to_dict(), drops.to_dict()], indent=2)
        Path(out_args.output_dir, "drops.json").write_text(drops_json + "\n")
        raise RuntimeError(f"Stage 1 kept no caption: {seed_drops.summary()}; {drops.summary()}")

    identity = model_identity(llm_args)
    generation = {
        "model": identity,
        "generation_kwargs": gen,
        "pipeline_name": Path(pipeline_yaml).parent.name,
        "wall_time_s": round(time.perf_counter() - start, 1),
        "arguments": arguments_dict(seed_args, caption_args, llm_args, out_args),
    }
    body = card_body(
        title="Unicorn captions",
        summary=(
            f"{len(rows)} detailed image captions written by `{identity['model_name_or_path']}` "
            f"(revision `{identity['revision']}`, backend `{identity['backend']}`) from {seed_drops.rows_out} caption "
            "seeds. There are no images: stage 3 encodes these captions into stand-in image embeddings."
        ),
        columns=CAPTIONS_COLUMN_DESCRIPTIONS,
        sections={
            "Statistics": stats_markdown(stats),
            "Rows in, rows out, drop reasons": drops_markdown([seed_drops, drops]),
            "Generation": f"Prompt `prompts/{prompt_path(caption_args.prompt).name}`; settings `{gen}`; the executed "
            "distilabel pipeline is `pipeline.yaml`, all arguments are in `generation.json`.",
        },
        config_name=CAPTIONS_CONFIG,
    )
    summary = write_stage_folder(
        out_args.output_dir,
        CAPTIONS_CONFIG,
        rows,
        [seed_drops, drops],
        stats,
        body,
        generation,
        prompts={prompt_path(caption_args.prompt).name: template + "\n"},
        pipeline_yamls=[pipeline_yaml],
        max_shard_rows=out_args.max_shard_rows,
        tags=["synthetic", "distilabel", "image-captioning", "unicorn"],
    )
    if out_args.push_to_hub:
        push_stage_folder(out_args.output_dir, out_args.hub_dataset_id, out_args.hub_private)
    return summary
