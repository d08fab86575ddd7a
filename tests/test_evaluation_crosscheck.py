"""Our scorers against lmms-eval's on the inputs that trip answer extraction (issue 13's cross-check).

Every case is a benchmark row (Hub columns, read by our loader), a generation, what our scorer extracts and what
lmms-eval extracts, with "" for nothing. The lmms-eval column is its logic as written in lmms-eval 0.7.3 (the version
`unicorn_hf/evaluation/lmms_eval_bridge.py` pins; these files are unchanged from v0.7.2 to main@75571cf):

    POPE       tasks/pope/utils.py          pope_process_results: the reply lower-cased and stripped must be "yes"/"no"
    MME        tasks/mme/utils.py           parse_pred_ans (Otter's): exact yes/no, "y"/"n", else "yes"/"no" in the
                                            first four characters, else "other"
    ScienceQA  tasks/scienceqa/utils.py     sqa_process_results: the reply is the letter, or starts with "<Letter>."
    MMStar     tasks/mmstar/utils.py        exact_match -> tasks/_task_utils/mcq_extract.py extract_mcq_answer(A-D)
    MMBench    tasks/mmbench/mmbench_evals.py  MMBench_Evaluator.can_infer (can_infer_option, can_infer_text), then
                                            extract_mcq_answer: the `mmbench_en_dev_static` path; the default
                                            `mmbench_en_dev` asks GPT where can_infer fails, which is not reproducible
                                            offline (and guesses a random letter when the API fails three times)

Where the two differ, the case names its reason in DIFFERENCES; a disagreement without one fails. With lmms-eval
importable, `test_lmms_column_is_what_lmms_eval_computes` recomputes the lmms-eval column with its own functions.
"""

from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import pytest

from unicorn_hf.evaluation.benchmarks import get_spec, normalize_rows
from unicorn_hf.evaluation.scorers import extract, score


DIFFERENCES = {
    "pope_exact": "lmms-eval's POPE counts a reply as yes/no only when it is exactly 'yes' or 'no' (lower-cased, "
    "stripped): 'Yes.' or 'No, there is no dog.' is neither, scored wrong and left out of precision and recall. We "
    "read the commitment in a sentence because small text-only-trained models rarely answer in one word.",
    "mme_prefix": "lmms-eval's MME parser looks for 'yes'/'no' in the first four characters only, so 'The correct "
    "answer is no.' is 'other' and 'Note: yes ...' or 'Nothing ...' is a no. We read the statement or the first "
    "commitment word in the whole reply.",
    "mme_hedge": "'Not sure.' starts with 'no' for lmms-eval's MME parser; for us a negation inside a hedge commits "
    "to nothing (issue 13 case 3).",
    "sqa_strict": "lmms-eval's ScienceQA accepts only the bare letter or '<Letter>.' at the start (LLaVA's rule); "
    "'(B)', 'The answer is B.' or the option's text score 0. We extract the letter from those too.",
    "mc_text": "lmms-eval's MMStar scorer reads letters only (extract_mcq_answer), so a reply that gives the option's "
    "text ('Yes', 'black cat') is unparsed; MMBench's can_infer_text reads it, as we do.",
    "mc_hedge": "'A or B, it is hard to tell.' commits to nothing; lmms-eval takes A (extract_mcq_answer's 'start' "
    "rule) or B (MMBench's can_infer_option takes 'B,' once the 'A' among more than three words is taken for a "
    "quantifier). We leave it unparsed (issue 13 case 2).",
    "mc_last_letter": "'The answer is B, not A.': lmms-eval prefers a letter that ends the reply "
    "(extract_mcq_answer's 'end' rule) or the first 'X.' form in its fixed order (can_infer_option); we take the "
    "explicit statement.",
    "mc_article": "'A cat, so C': lmms-eval's 'start' rule takes the article 'A'; we skip an 'A' before a lower-case "
    "word and take the conclusion C.",
    "mc_contained": "Options 'cat' and 'black cat', reply 'a black cat': lmms-eval's can_infer_text finds both texts "
    "and gives up; we drop a match that lies inside the match of a longer option.",
    "mc_negation": "'The answer is not A.', 'A is wrong.', 'It is not a dog.': lmms-eval's "
    "extractors look for a letter (or an option's text) and do not read a negation, so the option the reply rules "
    "out can be taken as its answer. For us a ruled-out option is never the answer; where the reply also names "
    "another, that one is (issue 22 case 1).",
    "mc_missing_option": "MMStar stores a two-option question with '(C) nan (D) nan'; lmms-eval extracts among A-D "
    "whatever the question holds, we only among the options it has (both score the reply wrong).",
}


@dataclass(frozen=True)
class Case:
    benchmark: str
    row: dict
    generation: str
    ours: str  # what our scorer extracts ("" = nothing)
    lmms: str  # what lmms-eval 0.7.3 extracts ("" = nothing, MME's "other")
    why: str = ""  # a key of DIFFERENCES, required when ours != lmms


POPE_ROW = {"question_id": 1, "question": "Is there a dog in the image?", "answer": "yes", "image": None,
            "category": "adversarial"}  # fmt: skip
MME_ROW = {"question_id": "existence/1.png", "question": "Is there a clock in this image? Please answer yes or no.",
           "answer": "Yes", "category": "existence", "image": None}  # fmt: skip
SQA_ROW = {"id": "sqa-1", "question": "Which animal is a mammal?", "choices": ["frog", "cat", "salmon"], "answer": 1,
           "hint": "", "subject": "natural science", "image": None}  # fmt: skip
MMSTAR_INLINE = {"index": 7, "question": "Which animal is on the sofa?\nOptions: A: cat, B: black cat, C: dog, "
                 "D: bird", "answer": "B", "category": "coarse perception", "l2_category": "image scene and topic",
                 "image": None}  # fmt: skip
MMSTAR_CHOICES = {"index": 8, "question": "Is the street wet?\nChoices:\n(A) Yes\n(B) No\n(C) nan\n(D) nan",
                  "answer": "A", "category": "instance reasoning", "l2_category": "single-instance reasoning",
                  "image": None}  # fmt: skip
MMBENCH_ROW = {"index": 3, "question": "Which animal is on the sofa?", "hint": float("nan"), "A": "cat",
               "B": "black cat", "C": "dog", "D": "bird", "answer": "B", "category": "object_localization",
               "image": None}  # fmt: skip

CASES = [
    # POPE: hedges, qualifiers, sentences
    Case("pope", POPE_ROW, "Yes", "yes", "yes"),
    Case("pope", POPE_ROW, " no ", "no", "no"),
    Case("pope", POPE_ROW, "Yes.", "yes", "", "pope_exact"),
    Case("pope", POPE_ROW, "No, there is no dog.", "no", "", "pope_exact"),
    Case("pope", POPE_ROW, "I'm not sure.", "", ""),
    Case("pope", POPE_ROW, "It is not clear, but yes.", "yes", "", "pope_exact"),
    Case("pope", POPE_ROW, "The correct answer is no.", "no", "", "pope_exact"),
    # MME: Otter's four-character prefix
    Case("mme", MME_ROW, "Yes", "yes", "yes"),
    Case("mme", MME_ROW, "No.", "no", "no"),
    Case("mme", MME_ROW, "y", "yes", "yes"),
    Case("mme", MME_ROW, "N", "no", "no"),
    Case("mme", MME_ROW, "Nope, it is a watch.", "no", "no"),
    Case("mme", MME_ROW, "Yes, but it is not round.", "yes", "yes"),
    Case("mme", MME_ROW, "I'm not sure.", "", ""),
    Case("mme", MME_ROW, "Unknown", "", ""),
    Case("mme", MME_ROW, "Not sure.", "", "no", "mme_hedge"),
    Case("mme", MME_ROW, "I don't know.", "", ""),
    Case("mme", MME_ROW, "It is not clear, but yes.", "yes", "", "mme_prefix"),
    Case("mme", MME_ROW, "The correct answer is no.", "no", "", "mme_prefix"),
    Case("mme", MME_ROW, "Note: yes, there is a clock on the wall.", "yes", "no", "mme_prefix"),
    Case("mme", MME_ROW, "Nothing in the image looks like a clock.", "", "no", "mme_prefix"),
    # ScienceQA: LLaVA's strict rule
    Case("scienceqa_img", SQA_ROW, "B", "B", "B"),
    Case("scienceqa_img", SQA_ROW, "b", "B", "B"),
    Case("scienceqa_img", SQA_ROW, "B. cat", "B", "B"),
    Case("scienceqa_img", SQA_ROW, "A. frog", "A", "A"),
    Case("scienceqa_img", SQA_ROW, "(B)", "B", "", "sqa_strict"),
    Case("scienceqa_img", SQA_ROW, "The answer is B.", "B", "", "sqa_strict"),
    Case("scienceqa_img", SQA_ROW, "cat", "B", "", "sqa_strict"),
    Case("scienceqa_img", SQA_ROW, "A frog is an amphibian, a salmon a fish: answer is B", "B", "", "sqa_strict"),
    Case("scienceqa_img", SQA_ROW, "A or B, it is hard to tell.", "", ""),
    # MMStar: options inside the question, options that contain each other, chains of thought, hedges
    Case("mmstar", MMSTAR_INLINE, "B", "B", "B"),
    Case("mmstar", MMSTAR_INLINE, "(B) black cat", "B", "B"),
    Case("mmstar", MMSTAR_INLINE, "Option A shows a cat and option C a dog; the answer is B.", "B", "B"),
    Case("mmstar", MMSTAR_INLINE, "The answer is B, not A.", "B", "A", "mc_last_letter"),
    Case("mmstar", MMSTAR_INLINE, "A cat, so C", "C", "A", "mc_article"),
    Case("mmstar", MMSTAR_INLINE, "a black cat", "B", "", "mc_text"),
    Case("mmstar", MMSTAR_INLINE, "A or B, it is hard to tell.", "", "A", "mc_hedge"),
    Case("mmstar", MMSTAR_CHOICES, "A or B, it is hard to tell.", "", "A", "mc_hedge"),
    Case("mmstar", MMSTAR_CHOICES, "Yes", "A", "", "mc_text"),
    Case("mmstar", MMSTAR_CHOICES, "C", "", "C", "mc_missing_option"),
    # MMBench (static path): the same traps through can_infer
    Case("mmbench", MMBENCH_ROW, "B", "B", "B"),
    Case("mmbench", MMBENCH_ROW, "B. black cat", "B", "B"),
    Case("mmbench", MMBENCH_ROW, "cat", "A", "A"),
    Case("mmbench", MMBENCH_ROW, "Option A shows a cat, option C a dog. So the answer is B.", "B", "B"),
    Case("mmbench", MMBENCH_ROW, "a black cat", "B", "", "mc_contained"),
    Case("mmbench", MMBENCH_ROW, "The answer is B, not A.", "B", "A", "mc_last_letter"),
    Case("mmbench", MMBENCH_ROW, "A or B, it is hard to tell.", "", "B", "mc_hedge"),
    # Issue 22: negated options and contracted hedges
    Case("pope", POPE_ROW, "It isn't clear, but yes.", "yes", "", "pope_exact"),
    Case("pope", POPE_ROW, "No, I can't see a dog.", "no", "", "pope_exact"),
    Case("mme", MME_ROW, "It isn't clear, but yes.", "yes", "", "mme_prefix"),
    Case("mme", MME_ROW, "No, I can't see a clock.", "no", "no"),
    Case("mme", MME_ROW, "I'm unsure.", "", ""),
    Case("scienceqa_img", SQA_ROW, "The answer is not A.", "", ""),
    Case("mmstar", MMSTAR_INLINE, "The answer is not A.", "", "A", "mc_negation"),
    Case("mmstar", MMSTAR_INLINE, "Not A, but C.", "C", "C"),
    Case("mmstar", MMSTAR_INLINE, "A is wrong.", "", "A", "mc_negation"),
    Case("mmbench", MMBENCH_ROW, "The answer is not A.", "", "A", "mc_negation"),
    Case("mmbench", MMBENCH_ROW, "It isn't A; it's B.", "B", "B"),
    Case("mmbench", MMBENCH_ROW, "It is not a dog.", "", "C", "mc_negation"),
]


def _example(case: Case):
    spec = get_spec(case.benchmark)
    return spec, spec.normalize(case.row, 0)


@pytest.mark.parametrize("case", CASES, ids=lambda case: f"{case.benchmark}:{case.generation[:32]}")
def test_crosscheck_table(case: Case):
    spec, example = _example(case)
    assert extract(spec.kind, case.generation, example) == case.ours
    if case.ours == case.lmms:
        assert not case.why, "a case where both agree names no difference"
    else:
        assert case.why in DIFFERENCES, f"ours {case.ours!r} vs lmms-eval {case.lmms!r} needs a reason"


def test_every_difference_is_used():
    assert {case.why for case in CASES if case.why} == set(DIFFERENCES)


# ------------------------------------------------------------------------------------------ metric-level differences


def test_mmbench_circular_copies_score_like_lmms_eval():
    """Four copies of one question (index q + k * 1e6), one pass wrong: lmms-eval's eval_result scores the question
    0 (one question, hit 0); so do we, with 4 passes, not 16."""
    rows = _mmbench_copies()
    examples = normalize_rows(get_spec("mmbench"), rows)
    generations = [row["answer"] for row in rows[:3]] + ["A" if rows[3]["answer"] != "A" else "B"]
    metrics, _ = score("mc_circular", examples, generations)
    assert (metrics["n"], metrics["questions"], metrics["circular_accuracy"]) == (4, 1, 0.0)
    assert metrics["vanilla_accuracy"] == pytest.approx(3 / 4)


def _mmbench_copies() -> list[dict]:
    texts = ["cat", "black cat", "dog", "bird"]
    rows = []
    for k in range(len(texts)):
        rotated = texts[k:] + texts[:k]
        rows.append({"index": 3 + k * 1_000_000, "question": "Which animal is on the sofa?", "hint": float("nan"),
                     **dict(zip("ABCD", rotated, strict=True)), "answer": "ABCD"[rotated.index("black cat")],
                     "category": "object_localization", "image": None})  # fmt: skip
    return rows


POPE_METRIC_ROWS = [("yes", "Yes"), ("yes", "I'm not sure."), ("no", "No"), ("no", "Yes"), ("no", "Yes")]


def test_pope_metrics_differ_from_lmms_eval_where_documented():
    """Same extraction, two metric definitions that differ on purpose:
    - recall: lmms-eval's pope_aggregate_recall counts a false negative only when the reply is "no", so an unparsed
      reply to a yes-question leaves recall untouched (1/1 here); we count it as a miss (1/2), as accuracy does;
    - yes_ratio: lmms-eval's pope_aggregate_yes_ratio counts the ground-truth yes (always 0.5 on POPE's balanced
      splits, 2/5 here); we count the model's yes answers (3/5), the POPE paper's "yes ratio" (the bias it exists
      to expose)."""
    examples = [_example(Case("pope", {**POPE_ROW, "question_id": i, "answer": a}, g, "", ""))[1]
                for i, (a, g) in enumerate(POPE_METRIC_ROWS)]  # fmt: skip
    metrics, _ = score("yes_no", examples, [g for _, g in POPE_METRIC_ROWS])
    assert metrics["recall"] == pytest.approx(1 / 2)  # lmms-eval: 1.0
    assert metrics["yes_ratio"] == pytest.approx(3 / 5)  # lmms-eval: 2/5, the answer key's
    assert metrics["precision"] == pytest.approx(1 / 3)  # lmms-eval: 1/3 (same definition)
    assert metrics["accuracy"] == pytest.approx(2 / 5)  # lmms-eval: 2/5 (same definition)


def test_answer_keys_given_as_option_text_are_mapped_to_their_letter():
    """A key written as the option's text ("black cat", or ScienceQA's "cat" instead of the index) is the letter of
    that option for us; lmms-eval compares the key with the extracted letter as it is (mmstar exact_match:
    "B" vs "BLACK CAT"), so such a row can never be right there. The real Hub files use letters (and ScienceQA an
    index); a key that names no option, or two, raises with the row named."""
    mmstar = get_spec("mmstar").normalize({**MMSTAR_INLINE, "answer": "Black cat"}, 0)
    scienceqa = get_spec("scienceqa_img").normalize({**SQA_ROW, "answer": "cat"}, 0)
    assert (mmstar.answer, scienceqa.answer) == ("B", "B")
    metrics, _ = score("mc", [mmstar, scienceqa], ["B", "The answer is B."])
    assert metrics["accuracy"] == 1.0
    with pytest.raises(ValueError, match=r"MMStar row 7: field 'answer' = 'lion'"):
        get_spec("mmstar").normalize({**MMSTAR_INLINE, "answer": "lion"}, 0)


def test_mmstar_accuracy_is_micro_where_lmms_eval_averages_l2_categories():
    """lmms-eval's mmstar_aggregate_results averages the l2-category means ("average"); we report the accuracy over
    all questions, as MMStar's authors (and VLMEvalKit) do. Two categories of 1 and 3 questions: 0.5 vs 2/3."""
    rows = [{**MMSTAR_INLINE, "index": i, "l2_category": c} for i, c in enumerate(["x", "y", "y", "y"])]
    examples = normalize_rows(get_spec("mmstar"), rows)
    metrics, _ = score("mc", examples, ["A", "B", "B", "A"])
    # per l2 category: x 0/1, y 2/3 -> lmms-eval average (0 + 2/3) / 2 = 1/3; ours 2/4
    assert metrics["accuracy"] == pytest.approx(2 / 4)


# ------------------------------------------------------------------------------ against the real lmms-eval (optional)


def _lmms_file(relative: str):
    """One lmms-eval source file loaded by path, without running `lmms_eval.tasks`' heavy package import."""
    spec = importlib.util.find_spec("lmms_eval")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("lmms-eval is an optional extra (pip install lmms-eval==0.7.3)")
    return _load_by_path(Path(next(iter(spec.submodule_search_locations))) / relative)


@functools.cache
def _load_by_path(path: Path):
    module_spec = importlib.util.spec_from_file_location(f"_lmms_eval_{'_'.join(path.parts[-3:])[:-3]}", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


def lmms_extract(case: Case) -> str:
    """What lmms-eval's own functions extract from `case.generation` ("" = nothing)."""
    mcq = _lmms_file("tasks/_task_utils/mcq_extract.py").extract_mcq_answer
    if case.benchmark == "pope":
        result = _lmms_file("tasks/pope/utils.py").pope_process_results(case.row, [case.generation])
        prediction = result["pope_accuracy"]["prediction"]
        return prediction if prediction in ("yes", "no") else ""
    if case.benchmark == "mme":
        pytest.importorskip("loguru")
        label = _lmms_file("tasks/mme/utils.py").parse_pred_ans(case.generation)
        return "" if label == "other" else label
    if case.benchmark == "scienceqa_img":
        process = _lmms_file("tasks/scienceqa/utils.py").sqa_process_results
        letters = "ABCDEFGH"[: len(case.row["choices"])]
        right = [
            L for i, L in enumerate(letters) if process({**case.row, "answer": i}, [case.generation])["exact_match"]
        ]
        return right[0] if right else ""
    if case.benchmark == "mmstar":
        return mcq(case.generation, choices=["A", "B", "C", "D"])  # mmstar/utils.py exact_match's extraction
    if case.benchmark == "mmbench":
        pytest.importorskip("loguru")
        evaluator = _lmms_file("tasks/mmbench/mmbench_evals.py").MMBench_Evaluator()
        choices = evaluator.build_choices(case.row)
        found = evaluator.can_infer(case.generation, dict(choices))
        return found or mcq(case.generation, choices=sorted(choices))  # eval_sub_data(static_only=True)
    raise ValueError(case.benchmark)


@pytest.mark.parametrize("case", CASES, ids=lambda case: f"{case.benchmark}:{case.generation[:32]}")
def test_lmms_column_is_what_lmms_eval_computes(case: Case):
    assert lmms_extract(case) == case.lmms


def test_lmms_eval_circular_and_pope_aggregation_on_the_same_inputs():
    pytest.importorskip("loguru")
    import pandas as pd  # noqa: F401  (mmbench_evals needs it)

    evaluator = _lmms_file("tasks/mmbench/mmbench_evals.py").MMBench_Evaluator()
    rows = _mmbench_copies()
    generations = [row["answer"] for row in rows[:3]] + ["A" if rows[3]["answer"] != "A" else "B"]
    results = [{**row, "prediction": g, "L2-category": "x", "split": "dev", "source": "s"}
               for row, g in zip(rows, generations, strict=True)]  # fmt: skip
    overall, _, _ = evaluator.eval_result(results, eval_method="static")
    assert overall == 0.0

    pope = _lmms_file("tasks/pope/utils.py")
    results = [pope.pope_process_results({**POPE_ROW, "answer": a}, [g])["pope_recall"] for a, g in POPE_METRIC_ROWS]
    # The lmms-eval values quoted in test_pope_metrics_differ_from_lmms_eval_where_documented.
    assert pope.pope_aggregate_recall(results) == 1.0
    assert pope.pope_aggregate_yes_ratio(results) == pytest.approx(2 / 5)
    assert pope.pope_aggregate_precision(results) == pytest.approx(1 / 3)
    assert pope.pope_aggregate_accuracy(results) == pytest.approx(2 / 5)


def test_lmms_eval_mmstar_never_scores_a_text_answer_key():
    pytest.importorskip("loguru")
    exact_match = _lmms_file("tasks/mmstar/utils.py").exact_match
    try:  # exact_match imports mcq_extract through `lmms_eval.tasks`, which needs lmms-eval's full install
        assert exact_match("B", "black cat") == 0.0  # ours: right, see the text-key test above
    except ImportError as error:
        pytest.skip(f"lmms-eval is only partly importable here: {error}")
