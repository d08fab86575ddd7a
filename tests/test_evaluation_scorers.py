"""Scorers against hand-computed values: generations -> extracted answers -> packaged `evaluate` modules."""

from __future__ import annotations

import pytest

from unicorn_hf.evaluation.benchmarks import BenchmarkExample, circular_rotations, get_spec, normalize_rows
from unicorn_hf.evaluation.scorers import METRIC_OF_KIND, METRICS_DIR, load_metric, score


def yes_no(answer: str, category: str = "", group: str = "", index: int = 0) -> BenchmarkExample:
    return BenchmarkExample(
        id=f"q{index}", image_id=group or f"img{index}", image=None, question="Is there a cat?", answer=answer,
        category=category, group_id=group,
    )  # fmt: skip


def mc(answer: str, options: list[str], index: int = 0, category: str = "") -> BenchmarkExample:
    return BenchmarkExample(
        id=f"q{index}", image_id=f"img{index}", image=None, question="Which?", answer=answer, options=options,
        category=category, group_id=f"q{index}",
    )  # fmt: skip


def test_every_metric_module_loads_by_local_path():
    for name in METRIC_OF_KIND.values():
        assert (METRICS_DIR / name / f"{name}.py").is_file()
        assert load_metric(name).name  # evaluate.load(local folder) worked offline


def test_pope_hand_computed():
    examples = [yes_no("yes", index=0), yes_no("no", index=1), yes_no("no", index=2), yes_no("yes", index=3)]
    generations = ["Yes, there is a cat.", "No.", "yes", "I cannot tell from this picture"]
    metrics, records = score("yes_no", examples, generations)
    # extracted: yes, no, yes, "" -> TP=1 (q0), FP=1 (q2), FN=1 (q3, unparsed), TN=1 (q1)
    assert [r["extracted"] for r in records] == ["yes", "no", "yes", ""]
    assert metrics["accuracy"] == pytest.approx(2 / 4)
    assert metrics["precision"] == pytest.approx(1 / 2)
    assert metrics["recall"] == pytest.approx(1 / 2)
    assert metrics["f1"] == pytest.approx(0.5)
    assert metrics["yes_ratio"] == pytest.approx(2 / 4)
    assert metrics["unparsed"] == 1


def test_pope_all_yes_gives_yes_ratio_one_and_f1_of_the_base_rate():
    examples = [yes_no("yes", index=0), yes_no("no", index=1), yes_no("no", index=2), yes_no("no", index=3)]
    metrics, _ = score("yes_no", examples, ["Yes"] * 4)
    # P = 1/4, R = 1 -> F1 = 2 * 0.25 / 1.25 = 0.4
    assert metrics["yes_ratio"] == 1.0
    assert metrics["f1"] == pytest.approx(0.4)
    assert metrics["accuracy"] == pytest.approx(0.25)


def test_mme_acc_plus_hand_computed():
    examples = [
        yes_no("yes", "existence", "e1", 0), yes_no("no", "existence", "e1", 1),  # image e1: one of two right
        yes_no("yes", "existence", "e2", 2), yes_no("no", "existence", "e2", 3),  # image e2: both right
        yes_no("yes", "code_reasoning", "c1", 4), yes_no("no", "code_reasoning", "c1", 5),  # c1: both wrong
    ]  # fmt: skip
    generations = ["Yes", "Yes, I think so", "yes", "No.", "No", "yes"]
    metrics, _ = score("mme", examples, generations)
    # existence: acc = 3/4, acc+ = 1/2 (only e2) -> 100 * 1.25 = 125
    assert metrics["existence/acc"] == pytest.approx(0.75)
    assert metrics["existence/acc_plus"] == pytest.approx(0.5)
    assert metrics["existence/score"] == pytest.approx(125.0)
    # code_reasoning: acc = 0, acc+ = 0 -> 0
    assert metrics["code_reasoning/score"] == pytest.approx(0.0)
    assert metrics["perception"] == pytest.approx(125.0)
    assert metrics["cognition"] == pytest.approx(0.0)
    assert metrics["total"] == pytest.approx(125.0)


def test_mme_rejects_unknown_category():
    with pytest.raises(ValueError, match="not an MME category"):
        score("mme", [yes_no("yes", "landscapes", "x", 0)], ["yes"])


def test_mmbench_circular_one_failed_rotation_fails_the_question():
    options = ["a red car", "a blue boat", "a tabby cat", "a green field"]
    q1 = circular_rotations(mc("C", options, index=1, category="scene"))
    q2 = circular_rotations(mc("A", options, index=2, category="scene"))
    # q1: always answer with the correct option's text (robust to rotation) -> 4/4 right.
    # q2: answer with the right letter in rotations 0-2, a wrong letter in rotation 3.
    generations = ["It is a tabby cat."] * 4
    generations += [f"The answer is {r.answer}" for r in q2[:3]]
    generations += ["B" if q2[3].answer != "B" else "C"]
    metrics, records = score("mc_circular", q1 + q2, generations)
    assert metrics["questions"] == 2
    assert metrics["circular_accuracy"] == pytest.approx(1 / 2)
    assert metrics["vanilla_accuracy"] == pytest.approx(7 / 8)
    assert metrics["scene/circular_accuracy"] == pytest.approx(1 / 2)
    assert [r["correct"] for r in records] == [True] * 7 + [False]


def test_mc_accuracy_hand_computed_with_categories():
    options = ["red", "blue", "green"]
    examples = [mc("A", options, 0, "color"), mc("B", options, 1, "color"), mc("C", options, 2, "shape")]
    metrics, _ = score("mc", examples, ["(A)", "I am not sure", "The answer is C."])
    assert metrics["accuracy"] == pytest.approx(2 / 3)
    assert metrics["color/accuracy"] == pytest.approx(1 / 2)
    assert metrics["shape/accuracy"] == pytest.approx(1.0)
    assert metrics["unparsed"] == 1


def test_score_checks_lengths_and_kind():
    with pytest.raises(ValueError, match="2 generations"):
        score("yes_no", [yes_no("yes")], ["yes", "no"])
    with pytest.raises(ValueError, match="Unknown scorer kind"):
        score("bleu", [yes_no("yes")], ["yes"])


def mmbench_copy(index: int, options: list[str], correct: str) -> dict:
    """A row of the MMBench dev/test file: its own index, the options A-D as columns, the answer letter."""
    return {"index": index, "question": "Which?", "hint": float("nan"), **dict(zip("ABCD", options, strict=True)),
            "answer": "ABCD"[options.index(correct)], "category": "scene", "image": None}  # fmt: skip


def test_mmbench_prerotated_copies_grouped_by_index_not_rotated_again():
    """Issue 13 case 1: the file's copies q, q + 1e6, q + 2e6, q + 3e6 are one question's four passes (grouped by
    index % 1e6, never rotated again): one wrong pass -> 4 passes, 1 question, circular accuracy 0.0."""
    texts = ["a red car", "a blue boat", "a tabby cat", "a green field"]
    rows = [mmbench_copy(5 + k * 1_000_000, texts[k:] + texts[:k], "a tabby cat") for k in range(4)]
    examples = normalize_rows(get_spec("mmbench"), rows)
    assert [e.id for e in examples] == ["5", "1000005", "2000005", "3000005"]
    assert {e.group_id for e in examples} == {"5"} and {e.image_id for e in examples} == {"mmbench-5"}
    generations = ["It is a tabby cat."] * 3 + ["A"]  # the 4th copy's A is "a green field"
    metrics, records = score("mc_circular", examples, generations)
    assert (metrics["n"], metrics["questions"], metrics["circular_accuracy"]) == (4, 1, 0.0)
    assert [r["correct"] for r in records] == [True, True, True, False]


def test_mmbench_rows_without_copies_are_rotated_and_max_samples_counts_questions():
    """A file whose copies come after all originals (as MMBench's do), plus a question without copies: the copied
    question keeps its 4 rows, the other gets 3 rotations from us; max_samples keeps whole questions."""
    texts = ["x", "y", "z", "w"]
    copied = [mmbench_copy(1 + k * 1_000_000, texts[k:] + texts[:k], "y") for k in range(4)]
    single = {**mmbench_copy(2, texts, "z"), "D": float("nan")}
    rows = [copied[0], single, *copied[1:]]
    examples = normalize_rows(get_spec("mmbench"), rows)
    assert [e.id for e in examples] == ["1", "1000001", "2000001", "3000001", "2@r0", "2@r1", "2@r2"]
    assert [e.id for e in normalize_rows(get_spec("mmbench"), rows, max_samples=1)] == [e.id for e in examples[:4]]
