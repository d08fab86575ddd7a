"""The table the quickstart ends with: rows and drops per stage, losses, scores, where artifacts lie, how to push."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table


if TYPE_CHECKING:
    from .quickstart import StageResult

logger = logging.getLogger(__name__)

# How each stage's folder is published (datasets with upload_folder, checkpoints with the model's push_to_hub).
PUSH_HINTS = {
    "encoder": "hf upload <user>/<encoder-repo> {dir}",
    "captions": "hf upload <user>/<captions-repo> {dir} --repo-type dataset",
    "instructions": "hf upload <user>/<instructions-repo> {dir} --repo-type dataset",
    "transfer": "hf upload <user>/<transfer-repo> {dir} --repo-type dataset",
    "pretrain": "hf upload <user>/<pretrain-repo> {dir}",
    "sft": "hf upload <user>/<model-repo> {dir}",
    "evaluate": "python recipes/evaluate.py --config <yaml> --update_model_card --push_to_hub",
}


def _rows(summary: dict) -> str:
    drops = summary.get("drops")
    if not drops:
        return ""
    logs = drops if isinstance(drops, list) else [drops]
    return ", ".join(f"{log.get('rows_in', '?')}→{log.get('rows_out', '?')}" for log in logs if isinstance(log, dict))


def _drops(summary: dict) -> str:
    drops = summary.get("drops")
    if not drops:
        return ""
    logs = drops if isinstance(drops, list) else [drops]
    reasons: dict[str, int] = {}
    for log in logs:
        for reason, count in (log.get("dropped") or {}).items() if isinstance(log, dict) else ():
            reasons[reason] = reasons.get(reason, 0) + int(count)
    return ", ".join(f"{reason}={count}" for reason, count in sorted(reasons.items())) or "none"


def _numbers(summary: dict) -> str:
    """A few headline numbers: the final training loss, evaluation scores, encoder retrieval."""
    parts = []
    training = summary.get("unicorn_training") or {}
    for key in ("train_loss", "final_train_loss"):
        if isinstance(training.get(key), (int, float)):
            parts.append(f"loss {training[key]:.3f}")
            break
    results = summary.get("results") or {}
    for key, value in _flatten(results).items():
        if isinstance(value, (int, float)) and not isinstance(value, bool) and len(parts) < 6:
            parts.append(f"{key} {value:.3g}")
    headline = summary.get("summary") or {}
    for key in ("rows", "json_acceptance_rate", "recall_at_1", "mean_words"):
        if isinstance(headline.get(key), (int, float)) and len(parts) < 6:
            parts.append(f"{key} {headline[key]:.3g}")
    return "; ".join(parts)


def _flatten(data: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{name}/"))
        else:
            flat[name] = value
    return flat


def render_summary(results: list[StageResult], total_seconds: float) -> None:
    table = Table(title=f"unicorn-hf quickstart: {total_seconds / 60:.1f} min in all", show_lines=True)
    for column in ("stage", "time", "rows in→out", "dropped (reason=count)", "numbers", "output / push"):
        table.add_column(column, overflow="fold")
    for result in results:
        elapsed = "skipped (done)" if result.seconds is None else f"{result.seconds:.0f}s"
        push = PUSH_HINTS.get(result.name, "").format(dir=result.output_dir)
        table.add_row(
            result.name,
            elapsed,
            _rows(result.summary),
            _drops(result.summary),
            _numbers(result.summary),
            f"{result.output_dir}\n{push}",
        )
    console = Console(width=160)
    with console.capture() as capture:
        console.print(table)
    logger.info("Summary\n%s", capture.get())
