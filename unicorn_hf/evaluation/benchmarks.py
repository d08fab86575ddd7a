"""The paper's benchmarks: Hub ids, column mappings and one normalised example type.

Every benchmark row, whether it comes from the Hub or from the offline fixtures (`fixtures.py`, same columns), is
mapped to a `BenchmarkExample`. Hub ids follow lmms-eval's copies (the community harness), except MMStar which is
published by its authors:

    name           Hub id (config, split)                    scorer       columns used
    pope           lmms-lab/POPE (-, test)                   yes_no       question_id question answer image
                                                                          image_source category
    scienceqa_img  lmms-lab/ScienceQA (ScienceQA-IMG, test)  mc           question choices answer(int) hint image
                                                                          subject
    mme            lmms-lab/MME (-, test)                    mme          question_id question answer image category
    mmbench        lmms-lab/MMBench (en, dev)                mc_circular  index question hint A B C D answer image
                                                                          category
    mmstar         Lin-Chen/MMStar (-, val)                  mc           index question(+ options) answer image
                                                                          category

MMBench's test split has no public answers, hence `dev` (what papers report as MMBench-dev). Circular evaluation is
done here by rotating the options of each question (N options -> N passes), see `circular_rotations`.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from .answers import option_letters


logger = logging.getLogger(__name__)


@dataclass
class BenchmarkExample:
    """One question about one image, in the shape every scorer takes."""

    id: str  # unique per question (per rotation for MMBench)
    image_id: str  # identical images share it: each is encoded once
    image: Any  # PIL image, local path or URL
    question: str  # the question text; for MC without the options (see `options_in_question`)
    answer: str  # "yes"/"no" for yes/no benchmarks, else the correct option letter
    options: list[str] = field(default_factory=list)  # option texts in letter order (MC only)
    hint: str | None = None  # context shown before the question (ScienceQA, MMBench)
    category: str = ""
    group_id: str = ""  # MME: the image (acc+); MMBench: the original question (circular)
    options_in_question: bool = False  # MMStar writes the options inside the question text


@dataclass(frozen=True)
class BenchmarkSpec:
    name: str
    display_name: str
    hub_id: str
    hub_config: str | None
    split: str
    kind: str  # scorer kind, see scorers.METRIC_OF_KIND
    main_metric: str  # the number papers report, for summaries and the card
    metric_types: tuple[str, ...]  # metrics written into the model card's model-index
    normalize: Callable[[dict, int], BenchmarkExample]
    paper_name: str  # how the Unicorn paper names it


def _is_missing(value: Any) -> bool:
    return (
        value is None
        or (isinstance(value, float) and math.isnan(value))
        or (isinstance(value, str) and not value.strip())
    )


def _yes_no(value: str, where: str) -> str:
    answer = str(value).strip().lower()
    if answer not in ("yes", "no"):
        raise ValueError(f"{where}: answer {value!r} is not yes/no")
    return answer


def _pope(row: dict, index: int) -> BenchmarkExample:
    qid = str(row.get("question_id", index))
    return BenchmarkExample(
        id=qid,
        image_id=str(row.get("image_source") or f"pope-{qid}"),
        image=row["image"],
        question=row["question"],
        answer=_yes_no(row["answer"], f"POPE question {qid}"),
        category=str(row.get("category") or ""),
    )


def _scienceqa(row: dict, index: int) -> BenchmarkExample:
    choices = list(row["choices"])
    answer = int(row["answer"])
    if not 0 <= answer < len(choices):
        raise ValueError(f"ScienceQA row {index}: answer index {answer} outside {len(choices)} choices")
    hint = None if _is_missing(row.get("hint")) else str(row["hint"])
    return BenchmarkExample(
        id=str(row.get("id", index)),
        image_id=f"scienceqa-{row.get('id', index)}",
        image=row["image"],
        question=row["question"],
        answer=option_letters(len(choices))[answer],
        options=choices,
        hint=hint,
        category=str(row.get("subject") or ""),
    )


def _mme(row: dict, index: int) -> BenchmarkExample:
    image_id = str(row["question_id"])  # the image file name: both questions of an image share it
    return BenchmarkExample(
        id=f"{image_id}#{index}",
        image_id=f"mme-{image_id}",
        image=row["image"],
        question=row["question"],
        answer=_yes_no(row["answer"], f"MME row {index} ({image_id})"),
        category=str(row["category"]),
        group_id=image_id,
    )


def _mmbench(row: dict, index: int) -> BenchmarkExample:
    letters = [letter for letter in "ABCDEFGH" if letter in row and not _is_missing(row[letter])]
    if letters != option_letters(len(letters)):
        raise ValueError(f"MMBench row {row.get('index', index)}: options {letters} are not contiguous from A")
    qid = str(row.get("index", index))
    return BenchmarkExample(
        id=qid,
        image_id=f"mmbench-{qid}",
        image=row["image"],
        question=row["question"],
        answer=str(row["answer"]).strip().upper(),
        options=[str(row[letter]) for letter in letters],
        hint=None if _is_missing(row.get("hint")) else str(row["hint"]),
        category=str(row.get("category") or ""),
        group_id=qid,
    )


_MMSTAR_OPTION = re.compile(r"(?:^|[\s,;])([A-H])\s*[:.]\s*")


def parse_inline_options(question: str) -> list[str]:
    """MMStar writes "... Options: A: x, B: y, C: z, D: w"; return ["x", "y", "z", "w"] ([] if not found)."""
    _, sep, tail = question.rpartition("Options:")
    if not sep:
        return []
    marks = list(_MMSTAR_OPTION.finditer(tail))
    if not marks or [m.group(1) for m in marks] != option_letters(len(marks)):
        return []
    bounds = [m.end() for m in marks]
    starts = [m.start() for m in marks[1:]] + [len(tail)]
    return [tail[b:e].strip().rstrip(",;").strip() for b, e in zip(bounds, starts, strict=True)]


def _mmstar(row: dict, index: int) -> BenchmarkExample:
    qid = str(row.get("index", index))
    options = parse_inline_options(row["question"])
    answer = str(row["answer"]).strip().upper()
    if not options:  # letters are still scoreable; option texts only help extraction
        options = [""] * (ord(answer) - ord("A") + 1 if answer else 4)
    return BenchmarkExample(
        id=qid,
        image_id=f"mmstar-{qid}",
        image=row["image"],
        question=row["question"],
        answer=answer,
        options=options,
        category=str(row.get("category") or ""),
        options_in_question=True,
    )


BENCHMARKS: dict[str, BenchmarkSpec] = {
    spec.name: spec
    for spec in (
        BenchmarkSpec("pope", "POPE", "lmms-lab/POPE", None, "test", "yes_no", "f1",
                      ("accuracy", "f1", "yes_ratio"), _pope, "POPE"),
        BenchmarkSpec("scienceqa_img", "ScienceQA-IMG", "lmms-lab/ScienceQA", "ScienceQA-IMG", "test", "mc",
                      "accuracy", ("accuracy",), _scienceqa, "SQA-I"),
        BenchmarkSpec("mme", "MME", "lmms-lab/MME", None, "test", "mme", "perception",
                      ("perception", "cognition"), _mme, "MME-P / MME-C"),
        BenchmarkSpec("mmbench", "MMBench", "lmms-lab/MMBench", "en", "dev", "mc_circular", "circular_accuracy",
                      ("circular_accuracy",), _mmbench, "MMBench"),
        BenchmarkSpec("mmstar", "MMStar", "Lin-Chen/MMStar", None, "val", "mc", "accuracy",
                      ("accuracy",), _mmstar, "MMStar"),
    )
}  # fmt: skip


def get_spec(name: str) -> BenchmarkSpec:
    if name not in BENCHMARKS:
        raise ValueError(f"Unknown benchmark {name!r}; known: {sorted(BENCHMARKS)}")
    return BENCHMARKS[name]


def circular_rotations(example: BenchmarkExample) -> list[BenchmarkExample]:
    """MMBench CircularEval: N copies of an N-option question, options shifted by 0..N-1, answer letter moved along.

    Rotation k puts the option that had letter i at letter (i - k) mod N, e.g. [a, b, c, d] -> [b, c, d, a].
    """
    n = len(example.options)
    letters = option_letters(n)
    correct = letters.index(example.answer)
    rotations = []
    for k in range(n):
        options = example.options[k:] + example.options[:k]
        rotations.append(
            replace(
                example,
                id=f"{example.id}@r{k}",
                options=options,
                answer=letters[(correct - k) % n],
                group_id=example.group_id or example.id,
            )
        )
    return rotations


def normalize_rows(
    spec: BenchmarkSpec, rows: Iterable[dict], max_samples: int | None = None
) -> list[BenchmarkExample]:
    """Map raw rows (Hub or fixture columns) to examples; `max_samples` keeps the first N questions before any
    circular expansion, so that every kept question is complete."""
    examples = []
    for index, row in enumerate(rows):
        if max_samples is not None and index >= max_samples:
            break
        examples.append(spec.normalize(row, index))
    if spec.kind == "mc_circular":
        examples = [rotation for example in examples for rotation in circular_rotations(example)]
    return examples


def load_hub_rows(spec: BenchmarkSpec, revision: str | None = None, max_samples: int | None = None):
    """The benchmark split from the Hub (needs network, or a warm `datasets` cache)."""
    from datasets import Image, load_dataset

    split = spec.split if max_samples is None else f"{spec.split}[:{max_samples}]"
    logger.info("Loading %s from the Hub: %s (%s, %s, revision %s)", spec.display_name, spec.hub_id, spec.hub_config,
                split, revision or "main")  # fmt: skip
    dataset = load_dataset(spec.hub_id, spec.hub_config, split=split, revision=revision)
    if "image" in dataset.column_names:
        # Keep the encoded bytes: POPE asks ~18 questions per image, so decoding every row up front would hold
        # thousands of decoded copies; `inference.load_images` decodes each distinct image once, when encoding.
        dataset = dataset.cast_column("image", Image(decode=False))
    return dataset


def load_benchmark(
    name: str,
    source: str,
    max_samples: int | None = None,
    revision: str | None = None,
    seed: int | None = None,
) -> tuple[BenchmarkSpec, list[BenchmarkExample]]:
    """Examples of one benchmark from `source`: "hub" (the real benchmark) or "fixture" (offline, see fixtures.py)."""
    spec = get_spec(name)
    if source == "hub":
        rows = load_hub_rows(spec, revision=revision, max_samples=max_samples)
    elif source == "fixture":
        from .fixtures import build_fixture

        if seed is None:
            raise ValueError("Fixture benchmarks need a seed (it places the answers among the options).")
        rows = build_fixture(name, seed=seed)
    else:
        raise ValueError(f"Unknown benchmark source {source!r}; expected 'hub' or 'fixture'.")
    examples = normalize_rows(spec, rows, max_samples=max_samples)
    logger.info("%s (%s): %d example(s)", spec.display_name, source, len(examples))
    return spec, examples


def build_question_text(example: BenchmarkExample, yes_no_suffix: str | None, mc_suffix: str | None) -> str:
    """The user turn (without `<image>`) in LLaVA's evaluation format.

    MC: "{hint}\\n{question}\\nA. {option}\\nB. ...\\n{mc_suffix}"; yes/no: "{question}\\n{yes_no_suffix}" unless the
    question already asks for yes or no (MME's questions end with "Please answer yes or no.").
    """
    parts = [example.hint] if example.hint else []
    parts.append(example.question.strip())
    if example.options and not example.options_in_question:
        parts.extend(
            f"{letter}. {option}"
            for letter, option in zip(option_letters(len(example.options)), example.options, strict=True)
        )
        if mc_suffix:
            parts.append(mc_suffix)
    elif example.options_in_question:
        if mc_suffix:
            parts.append(mc_suffix)
    elif yes_no_suffix and "yes or no" not in example.question.lower():
        parts.append(yes_no_suffix)
    return "\n".join(parts)


__all__ = [
    "BENCHMARKS",
    "BenchmarkExample",
    "BenchmarkSpec",
    "build_question_text",
    "circular_rotations",
    "get_spec",
    "load_benchmark",
    "normalize_rows",
    "parse_inline_options",
]
