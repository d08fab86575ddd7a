"""Dataset cards and the on-disk layout of a synthesis stage's output folder.

<output_dir>/
    README.md              card: YAML `configs:`, counts in/out, drop reasons, statistics, settings
    <config>/train-*.parquet
    drops.json             every DropLog of the stage
    summary.json           rows, drops, statistics (what the quickstart prints)
    generation.json        model name/revision, backend, generation settings, the recipe's arguments
    pipeline.yaml          the executed distilabel pipeline (its paths as `unicorn_hf.utils.paths` writes them)
    prompts/*.txt          the prompt files used
    .distilabel_cache/     distilabel's resumable cache (not uploaded)
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from pathlib import Path

import yaml
from datasets import Dataset

from unicorn_hf.utils.drops import DropLog
from unicorn_hf.utils.hub import CARD_NAME, configs_metadata, push_folder, write_card, write_dataset_config
from unicorn_hf.utils.paths import portable_record


logger = logging.getLogger(__name__)

CACHE_DIRNAME = ".distilabel_cache"


def _table(rows: list[tuple], header: tuple) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def drops_markdown(drop_logs: list[DropLog]) -> str:
    sections = []
    for log in drop_logs:
        rows = [
            (reason, count, ", ".join(log.examples.get(reason, [])[:3]))
            for reason, count in sorted(log.dropped.items())
        ]
        table = _table(rows, ("reason", "rows", "example ids")) if rows else "No row dropped."
        sections.append(f"**{log.stage}**: {log.rows_in} in, {log.rows_out} out.\n\n{table}")
    return "\n\n".join(sections)


def stats_markdown(stats: dict) -> str:
    return _table(list(stats.items()), ("statistic", "value"))


def card_body(title: str, summary: str, columns: dict[str, str], sections: dict[str, str], config_name: str) -> str:
    column_lines = "\n".join(f"- `{name}`: {meaning}" for name, meaning in columns.items())
    body = [
        f"# {title}",
        summary,
        "Generated with unicorn-hf following *Unicorn: Text-Only Data Synthesis for Vision "
        "Language Model Training* (Yu et al., 2025), with [distilabel](https://github.com/argilla-io/distilabel).",
        f"## Columns\n\n{column_lines}",
        *(f"## {heading}\n\n{text}" for heading, text in sections.items()),
        "## Load\n\n```python\nfrom datasets import load_dataset\n\n"
        f'ds = load_dataset("<this folder or repo id>", "{config_name}", split="train")\n```',
    ]
    return "\n\n".join(body)


def write_stage_folder(
    output_dir: str | Path,
    config_name: str,
    rows: list[dict],
    drop_logs: list[DropLog],
    stats: dict,
    body: str,
    generation: dict,
    prompts: dict[str, str],
    pipeline_yamls: list[Path],
    max_shard_rows: int | None,
    tags: list[str],
) -> dict:
    """Write the Hub-ready folder and return the summary (also saved as summary.json).

    The card goes last and an earlier card goes first: a run killed while writing leaves a folder without README.md,
    which `hub.load_dataset_folder` (the next stage) refuses instead of reading a mix of two runs."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / CARD_NAME).unlink(missing_ok=True)
    write_dataset_config(Dataset.from_list(rows), output_dir, config_name, max_shard_rows=max_shard_rows)
    (output_dir / "drops.json").write_text(json.dumps([log.to_dict() for log in drop_logs], indent=2) + "\n")
    # Records name paths as `unicorn_hf.utils.paths` writes them: never a path of this machine (e.g. the model cache).
    generation = portable_record(json.loads(json.dumps(generation, default=str)), output_dir)
    (output_dir / "generation.json").write_text(json.dumps(generation, indent=2) + "\n")
    prompt_dir = output_dir / "prompts"
    prompt_dir.mkdir(exist_ok=True)
    for name, text in prompts.items():
        (prompt_dir / name).write_text(text)
    for index, path in enumerate(pipeline_yamls):
        if path is not None and Path(path).is_file():
            target = "pipeline.yaml" if index == 0 else f"pipeline.repair-{index}.yaml"
            executed = portable_record(yaml.safe_load(Path(path).read_text()), output_dir)
            (output_dir / target).write_text(yaml.safe_dump(executed, sort_keys=False))
    summary = {
        "config": config_name,
        "rows": len(rows),
        "drops": [log.to_dict() for log in drop_logs],
        "stats": stats,
        "model": generation.get("model"),
    }
    summary = portable_record(json.loads(json.dumps(summary, default=str)), output_dir)
    (output_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    metadata = {
        "configs": configs_metadata([config_name]),
        "tags": tags,
        "size_categories": [_size_category(len(rows))],
    }
    write_card(output_dir, metadata, body)
    for log in drop_logs:
        logger.info(log.summary())
    return summary


def _size_category(rows: int) -> str:
    for limit, label in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if rows < limit:
            return label
    return "1M<n<10M"


def push_stage_folder(output_dir: str | Path, hub_dataset_id: str, private: bool | None) -> str:
    """Upload the folder as-is, without distilabel's cache."""
    return push_folder(
        output_dir, hub_dataset_id, repo_type="dataset", private=private, ignore_patterns=[f"{CACHE_DIRNAME}/**"]
    )


def arguments_dict(*dataclasses) -> dict:
    """The recipe's arguments, for generation.json (so a card tells exactly how the data was made)."""
    return {type(instance).__name__: asdict(instance) for instance in dataclasses}
