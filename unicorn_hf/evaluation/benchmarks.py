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

MMBench's test split has no public answers, hence `dev` (what papers report as MMBench-dev). Circular evaluation
needs every question once per rotation of its options (N options -> N passes). The MMBench dev/test files already
hold those copies: index `q + k * 1e6` is question `q` with its options rotated k times. Rows are grouped by
`index % 1e6`, as lmms-eval's `MMBench_Evaluator.eval_result` (tasks/mmbench/mmbench_evals.py) does; a group with
copies is scored as it is, a question without copies is rotated here (`circular_rotations`).

Answer keys are option letters; one given as option text ("a tabby cat") is mapped to its letter, and one that is
neither raises with the row and field named (`answer_letter`).
"""

from __future__ import annotations

import logging
import math
import numbers
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from datasets import Image, load_dataset

from unicorn_hf.data_contract import option_key
from unicorn_hf.evaluation.answers import option_letters
from unicorn_hf.evaluation.fixtures import build_fixture


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


def answer_letter(value: Any, options: list[str], where: str) -> str:
    """The letter of an answer key: a letter among the options' ("B", "(b)", "B."), or the text of exactly one
    option ("a tabby cat" -> its letter). Anything else raises with `where` (the row) named."""
    letters = option_letters(len(options))
    text = str(value).strip()
    bare = re.fullmatch(r"\(?([A-Za-z])\)?\.?", text)
    if bare and bare.group(1).upper() in letters:
        return bare.group(1).upper()
    key = option_key(text)
    same = [letter for letter, option in zip(letters, options, strict=True) if option and option_key(option) == key]
    if len(same) == 1:
        return same[0]
    detail = f"the text of {len(same)} options" if same else "neither an option letter nor an option's text"
    raise ValueError(f"{where}: field 'answer' = {value!r} is {detail} (letters {letters}, options {options})")


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
    where = f"ScienceQA row {row.get('id', index)}"
    if isinstance(row["answer"], numbers.Number) or str(row["answer"]).strip().isdigit():
        answer = int(row["answer"])  # the Hub copy's key: the index of the correct choice
        if not 0 <= answer < len(choices):
            raise ValueError(f"{where}: field 'answer' = index {answer} outside {len(choices)} choices")
        letter = option_letters(len(choices))[answer]
    else:
        letter = answer_letter(row["answer"], choices, where)
    hint = None if _is_missing(row.get("hint")) else str(row["hint"])
    return BenchmarkExample(
        id=str(row.get("id", index)),
        image_id=f"scienceqa-{row.get('id', index)}",
        image=row["image"],
        question=row["question"],
        answer=letter,
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


# MMBench's circular copies: row `q + k * CIRCULAR_INDEX_STRIDE` is question `q` rotated k times (the dataset's own
# convention, read by lmms-eval's mmbench_evals.py as `index % int(1e6)`).
CIRCULAR_INDEX_STRIDE = 1_000_000


def _mmbench(row: dict, index: int) -> BenchmarkExample:
    letters = [letter for letter in "ABCDEFGH" if letter in row and not _is_missing(row[letter])]
    if letters != option_letters(len(letters)):
        raise ValueError(f"MMBench row {row.get('index', index)}: options {letters} are not contiguous from A")
    raw_index = row.get("index", index)
    qid = str(raw_index)
    # The copies of one question share its image, so `image_id` names the question: each image is encoded once.
    question_id = str(int(raw_index) % CIRCULAR_INDEX_STRIDE) if str(raw_index).isdigit() else qid
    options = [str(row[letter]) for letter in letters]
    return BenchmarkExample(
        id=qid,
        image_id=f"mmbench-{question_id}",
        image=row["image"],
        question=row["question"],
        answer=answer_letter(row["answer"], options, f"MMBench row {qid}"),
        options=options,
        hint=None if _is_missing(row.get("hint")) else str(row["hint"]),
        category=str(row.get("category") or ""),
        group_id=question_id,
    )


# MMStar's questions have four options (Chen et al., 2024); lmms-eval's mmstar/utils.py extracts among A-D.
MMSTAR_DEFAULT_OPTIONS = 4
# How MMStar writes an option inside its question: "A: x, B: y", "(A) x\n(B) y", "A. x", "A) x". `{letter}` is
# filled in; a marker starts the tail or follows whitespace, a comma or a semicolon.
_INLINE_MARKERS = (r"{letter}\s*:", r"\({letter}\)", r"{letter}\.(?=\s)", r"{letter}\)")
_OPTIONS_HEADER = re.compile(r"\b(?:Options|Choices)\s*:", re.IGNORECASE)
_MISSING_OPTION = {"", "nan"}  # how MMStar writes the options a question lacks


def _inline_marks(tail: str, marker: str) -> list[re.Match]:
    """The markers A, B, C, ... of one style, each searched after the previous one, so an option's own text
    ("Vitamin B. ...") cannot be taken for the next marker of another style."""
    marks, position = [], 0
    for letter in "ABCDEFGH":
        found = re.compile(rf"(?:^|(?<=[\s,;])){marker.format(letter=letter)}\s*").search(tail, position)
        if found is None:
            break
        marks.append(found)
        position = found.end()
    return marks


def parse_inline_options(question: str) -> list[str]:
    """The options an MMStar question writes after "Options:" or "Choices:", in letter order.

    "... Options: A: x, B: y, C: z, D: w" -> ["x", "y", "z", "w"]; "Choices:\n(A) Yes\n(B) No\n(C) nan\n(D) nan" ->
    ["Yes", "No"]: trailing missing options ("nan", as MMStar stores a question with fewer than four) are dropped,
    a missing one between two real ones stays as "" (its letter stays valid, its text matches nothing). [] when the
    question holds no such list.
    """
    headers = list(_OPTIONS_HEADER.finditer(question))
    if not headers:
        return []
    tail = question[headers[-1].end() :]
    # The style with the most markers wins; ties go to the one whose "A" comes first.
    marks = max(
        (_inline_marks(tail, marker) for marker in _INLINE_MARKERS),
        key=lambda found: (len(found), -found[0].start() if found else 0),
    )
    if len(marks) < 2:
        return []
    ends = [m.start() for m in marks[1:]] + [len(tail)]
    options = [tail[m.end() : end].strip().rstrip(",;").strip() for m, end in zip(marks, ends, strict=True)]
    while options and options[-1].lower() in _MISSING_OPTION:
        options.pop()
    return ["" if option.lower() in _MISSING_OPTION else option for option in options]


def _mmstar(row: dict, index: int) -> BenchmarkExample:
    qid = str(row.get("index", index))
    options = parse_inline_options(row["question"])
    if not options:
        # No option list to read: the letters A-D, as lmms-eval's mmstar exact_match extracts among; the texts stay
        # unknown (they only help extraction). The valid letters never depend on the gold answer.
        logger.debug("MMStar row %s: no option list found in the question; scoring letters A-D", qid)
        options = [""] * MMSTAR_DEFAULT_OPTIONS
    return BenchmarkExample(
        id=qid,
        image_id=f"mmstar-{qid}",
        image=row["image"],
        question=row["question"],
        answer=answer_letter(row["answer"], options, f"MMStar row {qid}"),
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


def circular_passes(examples: Iterable[BenchmarkExample], max_questions: int | None = None) -> list[BenchmarkExample]:
    """The passes of MMBench CircularEval: rows grouped by question (`group_id`, i.e. `index % 1e6`) in order of
    first appearance. A question that comes with its rotated copies is kept as it is (never rotated again); one
    without copies is rotated here. `max_questions` keeps the first N questions, each complete."""
    groups: dict[str, list[BenchmarkExample]] = {}
    for example in examples:
        groups.setdefault(example.group_id or example.id, []).append(example)
    passes = []
    for question_id, rows in list(groups.items())[:max_questions]:
        if len(rows) == 1:
            passes += circular_rotations(rows[0])
            continue
        # lmms-eval scores such a group as it is; say so when it is not one pass per option.
        if len(rows) != len(rows[0].options) or len({tuple(sorted(r.options)) for r in rows}) != 1:
            logger.warning("MMBench question %s: %d copies for %d options, or copies with other options (%s); "
                           "scored as given", question_id, len(rows), len(rows[0].options),
                           [r.id for r in rows])  # fmt: skip
        passes += rows
    return passes


def normalize_rows(
    spec: BenchmarkSpec, rows: Iterable[dict], max_samples: int | None = None
) -> list[BenchmarkExample]:
    """Map raw rows (Hub or fixture columns) to examples; `max_samples` keeps the first N questions (for MMBench
    with all their circular passes, so that every kept question is complete)."""
    if spec.kind == "mc_circular":
        return circular_passes((spec.normalize(row, index) for index, row in enumerate(rows)), max_samples)
    examples = []
    for index, row in enumerate(rows):
        if max_samples is not None and index >= max_samples:
            break
        examples.append(spec.normalize(row, index))
    return examples


def load_hub_rows(spec: BenchmarkSpec, revision: str | None = None, max_samples: int | None = None):
    """The benchmark split from the Hub (needs network, or a warm `datasets` cache)."""
    # MMBench's copies of a question lie far from it in the file (q, then q + 1e6 after all originals), so a row
    # slice would cut questions apart; `normalize_rows` keeps the first N questions instead. (`load_dataset` fetches
    # the whole split either way: a slice saves no download.)
    sliced = max_samples is not None and spec.kind != "mc_circular"
    split = f"{spec.split}[:{max_samples}]" if sliced else spec.split
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
    "CIRCULAR_INDEX_STRIDE",
    "MMSTAR_DEFAULT_OPTIONS",
    "BenchmarkExample",
    "BenchmarkSpec",
    "answer_letter",
    "build_question_text",
    "circular_passes",
    "circular_rotations",
    "get_spec",
    "load_benchmark",
    "normalize_rows",
    "parse_inline_options",
]
