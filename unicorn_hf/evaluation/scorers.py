"""Score generations: extract the answer (answers.py), then compute with an `evaluate` module shipped in this package.

The metric modules live in `unicorn_hf/evaluation/metrics/<name>/<name>.py` and are loaded by local path with
`evaluate.load(path)`: the Hub copies cannot be fetched offline, and the local ones are the exact code that scored a
published result. Each scorer kind matches a benchmark family:

    yes_no       POPE                 -> metrics/pope
    mme          MME                  -> metrics/mme (acc + acc+ per category)
    mc           ScienceQA-IMG, MMStar -> metrics/mc_accuracy
    mc_circular  MMBench              -> metrics/mmbench_circular
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import evaluate

from unicorn_hf.evaluation.answers import extract_choice, extract_yes_no
from unicorn_hf.evaluation.benchmarks import BenchmarkExample


logger = logging.getLogger(__name__)

METRICS_DIR = Path(__file__).resolve().parent / "metrics"
METRIC_OF_KIND = {"yes_no": "pope", "mme": "mme", "mc": "mc_accuracy", "mc_circular": "mmbench_circular"}


@functools.cache
def load_metric(name: str):
    """`evaluate.load` of a packaged metric module by its local folder (works with HF_HUB_OFFLINE=1)."""
    path = METRICS_DIR / name
    if not (path / f"{name}.py").is_file():
        raise FileNotFoundError(
            f"{path / (name + '.py')} is missing; packaged metrics: {sorted(METRIC_OF_KIND.values())}"
        )
    return evaluate.load(str(path))


@dataclass
class ScoredExample:
    """One example with the raw generation and the extracted answer ("" when nothing could be extracted)."""

    example: BenchmarkExample
    generation: str
    extracted: str

    @property
    def correct(self) -> bool:
        return self.extracted == self.example.answer

    def to_dict(self) -> dict:
        ex = self.example
        return {
            "id": ex.id,
            "image_id": ex.image_id,
            "question": ex.question,
            "options": list(ex.options),
            "answer": ex.answer,
            "generation": self.generation,
            "extracted": self.extracted,
            "correct": self.correct,
            "category": ex.category,
            "group_id": ex.group_id,
        }


def extract(kind: str, generation: str, example: BenchmarkExample) -> str:
    """The canonical answer of one generation for a scorer kind ("" when it commits to nothing)."""
    if kind in ("yes_no", "mme"):
        return extract_yes_no(generation) or ""
    if kind in ("mc", "mc_circular"):
        return extract_choice(generation, example.options) or ""
    raise ValueError(f"Unknown scorer kind {kind!r}; expected one of {sorted(METRIC_OF_KIND)}")


def score(kind: str, examples: Sequence[BenchmarkExample], generations: Sequence[str]) -> tuple[dict, list[dict]]:
    """Extract every answer and compute the benchmark's metrics. Returns (metrics, per-example records)."""
    if len(examples) != len(generations):
        raise ValueError(f"{len(examples)} examples but {len(generations)} generations")
    if kind not in METRIC_OF_KIND:
        raise ValueError(f"Unknown scorer kind {kind!r}; expected one of {sorted(METRIC_OF_KIND)}")
    scored = [ScoredExample(ex, gen, extract(kind, gen, ex)) for ex, gen in zip(examples, generations, strict=True)]
    predictions = [s.extracted for s in scored]
    references = [ex.answer for ex in examples]
    categories = [ex.category or "" for ex in examples]
    inputs = {"predictions": predictions, "references": references}
    if kind == "mme":
        inputs |= {"categories": categories, "image_ids": [ex.group_id for ex in examples]}
    elif kind == "mc":
        inputs |= {"categories": categories}
    elif kind == "mc_circular":
        inputs |= {"question_ids": [ex.group_id for ex in examples], "categories": categories}
    metrics = load_metric(METRIC_OF_KIND[kind]).compute(**inputs)
    return metrics, [s.to_dict() for s in scored]


__all__ = ["METRICS_DIR", "METRIC_OF_KIND", "ScoredExample", "extract", "load_metric", "score"]
