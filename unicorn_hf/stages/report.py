"""The table the quickstart ends with: rows and drops per stage, losses, scores, where artifacts lie, how to push."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table


logger = logging.getLogger(__name__)


@dataclass
class StageResult:
    """One stage of a quickstart run, as the report reads it (`unicorn_hf.stages.runner` produces them)."""

    name: str
    command: str
    output_dir: Path
    seconds: float | None  # this run's; None: skipped, finished earlier (or not run: dry_run)
    summary: dict
    recorded_seconds: float | None = None  # the run that made the output, this one or an earlier one
    kind: str | None = None  # the stage kind (`pretrain` for `pretrain_plain`); None: the name is the kind
    dry_run: bool = False  # logged, not run (`--dry_run`)


# How each stage's folder is published (datasets with upload_folder, checkpoints with the model's push_to_hub).
PUSH_HINTS = {
    "encoder": "hf upload <user>/<encoder-repo> {dir}",
    "captions": "hf upload <user>/<captions-repo> {dir} --repo-type dataset",
    "instructions": "hf upload <user>/<instructions-repo> {dir} --repo-type dataset",
    "transfer": "hf upload <user>/<transfer-repo> {dir} --repo-type dataset",
    "pretrain": "hf upload <user>/<pretrain-repo> {dir}",
    "sft": "hf upload <user>/<model-repo> {dir}",
    "pair_text": "hf upload <user>/<text-repo> {dir} --repo-type dataset",
    "sees": "(results.json goes into the card through evaluate.yaml's sees_results)",
    "ladder": "(ladder.json / ladder.md: the probe ladder of the checkpoint)",
    "evaluate": "python recipes/evaluate_vlm.py --config <yaml> --update_model_card --push_to_hub",
}


def _drop_logs(summary: dict) -> list[dict]:
    """Every DropLog a stage left: drops.json (one log, a list, or one per config) and the training record's."""
    found = []
    for candidate in (summary.get("drops"), (summary.get("unicorn_training") or {}).get("drops")):
        if isinstance(candidate, dict) and "rows_in" in candidate:
            found.append(candidate)
        elif isinstance(candidate, dict):
            found.extend(log for log in candidate.values() if isinstance(log, dict) and "rows_in" in log)
        elif isinstance(candidate, list):
            found.extend(log for log in candidate if isinstance(log, dict) and "rows_in" in log)
    return found


def _rows(summary: dict) -> str:
    return ", ".join(f"{log['rows_in']}→{log.get('rows_out', '?')}" for log in _drop_logs(summary))


def _drops(summary: dict) -> str:
    reasons: dict[str, int] = {}
    for log in _drop_logs(summary):
        for reason, count in (log.get("dropped") or {}).items():
            reasons[reason] = reasons.get(reason, 0) + int(count)
    return ", ".join(f"{reason}={count}" for reason, count in sorted(reasons.items())) or "none"


def _numbers(summary: dict) -> str:
    """Headline numbers: the training loss, evaluation scores in the paper's mean mode, encoder retrieval."""
    parts = []
    training_results = (summary.get("unicorn_training") or {}).get("results") or {}
    if isinstance(training_results.get("train_loss"), (int, float)):
        parts.append(f"train loss {training_results['train_loss']:.3f}")
    headline = (summary.get("results") or {}).get("headline") or {}
    if "sighted - blind" in headline:  # recipes/sees.py: held-out real images, sighted against blind
        verdict = "yes" if summary["results"].get("sees_image") else "not shown"
        parts.append(
            f"sees the image? {verdict}: sighted {100 * headline['sighted accuracy']:.1f}% vs blind "
            f"{100 * headline['blind accuracy']:.1f}%, difference {100 * headline['sighted - blind']:+.1f} "
            f"[{100 * headline['sighted - blind low']:+.1f}, {100 * headline['sighted - blind high']:+.1f}] points"
        )
    ladder = (summary.get("ladder") or {}).get("summary") or {}
    for rung, entry in ladder.items():  # recipes/ladder.py: rungs b and c against the shuffled control
        if rung != "text" and not rung.startswith("image/"):
            continue
        # the headline scoring: calibrated candidate likelihood (pretraining), or the mc (by letter, and in the cloze
        # formulation when scored) and yes/no answers (SFT)
        for scoring in [name for name in ("calibrated", "mc", "mc_cloze_calibrated", "yes_no") if name in entry]:
            accuracy, gap = entry[scoring]["accuracy"], entry[scoring].get("minus_blind/shuffled")
            label = rung if scoring == "calibrated" else f"{rung} {scoring}"
            part = f"{label} {100 * accuracy['accuracy']:.1f}%"
            if gap is not None:
                interval = f"[{100 * gap['low']:+.1f}, {100 * gap['high']:+.1f}]"
                part += f" ({100 * gap['difference']:+.1f} {interval} vs shuffled)"
            parts.append(part)
    # the paper's protocol shifts by the evaluated images' own mean; the other modes are in results.json
    parts += [f"{key.split('[')[0]} {value:.3g}" for key, value in headline.items() if key.endswith("[mean=eval]")]
    held_out = (((summary.get("metrics") or {}).get("results") or {}).get("held_out") or {}).get("before_shift", {})
    for key in ("image_to_text_R@1", "text_to_image_R@1", "chance_R@1"):
        if isinstance(held_out.get(key), (int, float)):
            parts.append(f"held-out {key} {held_out[key]:.3f}")
    stage_summary = summary.get("summary") or {}
    for key in ("rows", "json_acceptance_rate", "mean_words"):
        if isinstance(stage_summary.get(key), (int, float)):
            parts.append(f"{key} {stage_summary[key]:.3g}")
    return "; ".join(parts)


def render_summary(results: list[StageResult], total_seconds: float) -> None:
    table = Table(
        title=f"unicorn-hf: {len(results)} stages, {total_seconds / 60:.1f} min in this run", show_lines=True
    )
    for column in ("stage", "time", "rows in→out", "dropped (reason=count)", "numbers", "output / push"):
        table.add_column(column, overflow="fold")
    for result in results:
        if result.dry_run:
            elapsed = "dry run"
        elif result.seconds is not None:
            elapsed = f"{result.seconds:.0f}s"
        else:
            earlier = "" if result.recorded_seconds is None else f", took {result.recorded_seconds:.0f}s"
            elapsed = f"skipped (done{earlier})"
        push = PUSH_HINTS.get(result.kind or result.name, "").format(dir=result.output_dir)
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
