"""Benchmark loaders and fixtures: Hub column mappings, photograph fixtures, circular rotations, prompts."""

from __future__ import annotations

import pytest

from unicorn_hf.encoders import load_encoder_for
from unicorn_hf.evaluation.benchmarks import (
    BENCHMARKS,
    MMSTAR_DEFAULT_OPTIONS,
    BenchmarkExample,
    answer_letter,
    build_question_text,
    circular_rotations,
    get_spec,
    load_benchmark,
    normalize_rows,
    parse_inline_options,
)
from unicorn_hf.evaluation.fixtures import OBJECTS, build_fixture
from unicorn_hf.evaluation.scorers import score
from unicorn_hf.utils.assets import SKIMAGE_PHOTOGRAPHS


NUM_PHOTOS = len(SKIMAGE_PHOTOGRAPHS)


def test_every_benchmark_has_a_hub_id_and_a_fixture():
    assert set(BENCHMARKS) == {"pope", "scienceqa_img", "mme", "mmbench", "mmstar"}
    for spec in BENCHMARKS.values():
        assert "/" in spec.hub_id
        assert spec.main_metric in spec.metric_types


def test_pope_fixture_balances_real_positives_and_negatives():
    _, examples = load_benchmark("pope", "fixture", seed=0)
    assert len(examples) == 2 * NUM_PHOTOS
    assert sum(e.answer == "yes" for e in examples) == NUM_PHOTOS
    for example in examples:
        name = example.image_id
        own = f"Is there {OBJECTS[name]} in the image?"
        assert (example.question == own) == (example.answer == "yes")
        assert example.image.mode == "RGB" and min(example.image.size) >= 32  # a real photograph, not a stub


def test_mme_fixture_pairs_two_questions_per_image():
    _, examples = load_benchmark("mme", "fixture", seed=0)
    by_image = {}
    for example in examples:
        by_image.setdefault(example.group_id, []).append(example.answer)
    assert len(by_image) == NUM_PHOTOS
    assert all(sorted(answers) == ["no", "yes"] for answers in by_image.values())
    assert all(e.category == "existence" for e in examples)


@pytest.mark.parametrize("name", ["scienceqa_img", "mmstar"])
def test_mc_fixtures_hold_the_photo_caption_at_the_answer_letter(name):
    captions = {photo.name: photo.caption for photo in SKIMAGE_PHOTOGRAPHS}
    rows = build_fixture(name, seed=3)
    _, examples = load_benchmark(name, "fixture", seed=3)
    assert len(examples) == NUM_PHOTOS == len(rows)
    letters_used = set()
    for example, photo in zip(examples, SKIMAGE_PHOTOGRAPHS, strict=True):
        assert len(example.options) == 4
        assert example.options["ABCD".index(example.answer)] == captions[photo.name]
        letters_used.add(example.answer)
    assert len(letters_used) > 1  # the seeded RNG moves the answer around


def test_fixtures_are_deterministic_per_seed():
    first = [(r["question"], r["answer"]) for r in build_fixture("mmbench", seed=1)]
    assert first == [(r["question"], r["answer"]) for r in build_fixture("mmbench", seed=1)]
    assert first != [(r["question"], r["answer"]) for r in build_fixture("mmbench", seed=2)]


def test_mmbench_circular_expansion_and_max_samples():
    _, examples = load_benchmark("mmbench", "fixture", seed=0, max_samples=3)
    assert len(examples) == 3 * 4  # 3 questions x 4 rotations
    assert len({e.group_id for e in examples}) == 3
    for group in {e.group_id for e in examples}:
        rotations = [e for e in examples if e.group_id == group]
        correct_texts = {e.options["ABCD".index(e.answer)] for e in rotations}
        assert len(correct_texts) == 1  # the answer letter follows its option
        assert {e.answer for e in rotations} == set("ABCD")


def test_circular_rotations_hand_example():
    example = BenchmarkExample(id="7", image_id="i", image=None, question="q", answer="B", options=["a", "b", "c"])
    rotations = circular_rotations(example)
    assert [r.options for r in rotations] == [["a", "b", "c"], ["b", "c", "a"], ["c", "a", "b"]]
    assert [r.answer for r in rotations] == ["B", "A", "C"]
    assert {r.group_id for r in rotations} == {"7"}


def test_hub_column_mappings_on_hub_shaped_rows():
    scienceqa = normalize_rows(
        get_spec("scienceqa_img"),
        [{"image": None, "question": "Which is a mammal?", "choices": ["frog", "cat"], "answer": 1, "hint": "",
          "subject": "natural science"}],
    )[0]  # fmt: skip
    assert (scienceqa.answer, scienceqa.options, scienceqa.hint) == ("B", ["frog", "cat"], None)
    mmbench = normalize_rows(
        get_spec("mmbench"),
        [{"index": 5, "question": "Q?", "hint": float("nan"), "A": "x", "B": "y", "C": "z", "D": float("nan"),
          "answer": "C", "category": "c", "image": None}],
    )  # fmt: skip
    assert len(mmbench) == 3 and mmbench[0].options == ["x", "y", "z"] and mmbench[0].hint is None
    mme = normalize_rows(
        get_spec("mme"),
        [{"question_id": "code_reasoning/0020.png", "question": "Q? Please answer yes or no.", "answer": "Yes",
          "category": "code_reasoning", "image": None}],
    )[0]  # fmt: skip
    assert (mme.answer, mme.group_id) == ("yes", "code_reasoning/0020.png")
    with pytest.raises(ValueError, match="not yes/no"):
        normalize_rows(get_spec("pope"), [{"question_id": 1, "question": "q", "answer": "maybe", "image": None}])


def test_parse_inline_options():
    question = "Which one?\nOptions: A: a cat, B: a dog, C: 3.5 m, D: none of them"
    assert parse_inline_options(question) == ["a cat", "a dog", "3.5 m", "none of them"]
    assert parse_inline_options("No options here") == []


def test_build_question_text_llava_format():
    mc = BenchmarkExample(id="1", image_id="i", image=None, question="Which?", answer="A", options=["x", "y"],
                          hint="Look closely.")  # fmt: skip
    assert build_question_text(mc, "YN", "MC") == "Look closely.\nWhich?\nA. x\nB. y\nMC"
    yn = BenchmarkExample(id="2", image_id="i", image=None, question="Is there a cat?", answer="yes")
    assert build_question_text(yn, "Answer yes or no.", "MC") == "Is there a cat?\nAnswer yes or no."
    mme = BenchmarkExample(id="3", image_id="i", image=None, question="Cat? Please answer yes or no.", answer="no")
    assert build_question_text(mme, "Answer yes or no.", "MC") == "Cat? Please answer yes or no."


def test_unknown_benchmark_and_source():
    with pytest.raises(ValueError, match="Unknown benchmark"):
        load_benchmark("vqav2", "fixture", seed=0)
    with pytest.raises(ValueError, match="Unknown benchmark source"):
        load_benchmark("pope", "disk", seed=0)


def test_a_checkpoint_without_an_encoder_record_needs_the_encoder_named():
    with pytest.raises(ValueError, match=r"records no `encoder` \(encoder_id 'open_clip:x'\); pass the encoder spec"):
        load_encoder_for("open_clip:x", None, encoder=None, device="cpu", dtype="float32", batch_size=2)


def test_mmstar_inline_choices_never_depend_on_the_gold_letter():
    """Issue 13 case 2: options written as "Choices: (A) Yes (B) No (C) nan (D) nan" (one per line) are read from the
    question, the "nan" ones dropped; the same hedge is unparsed whatever the gold letter."""
    question = "Is the street wet?\nChoices:\n(A) Yes\n(B) No\n(C) nan\n(D) nan"
    spec = get_spec("mmstar")
    for gold in "AB":
        example = spec.normalize({"index": 1, "question": question, "answer": gold, "image": None}, 0)
        assert example.options == ["Yes", "No"]
        metrics, records = score("mc", [example], ["A or B, it is hard to tell."])
        assert records[0]["extracted"] == "" and metrics["unparsed"] == 1


@pytest.mark.parametrize(
    ("question", "options"),
    [
        (
            "Which?\nOptions: A: B. subtilis, B: E. coli, C: 3.5 m, D: none",
            ["B. subtilis", "E. coli", "3.5 m", "none"],
        ),
        ("Which?\nChoices:\n(A) Yes\n(B) No\n(C) nan\n(D) nan", ["Yes", "No"]),
        (
            "Which?\nOptions:\nA. red\nB. blue\nC. nan\nD. green",
            ["red", "blue", "", "green"],
        ),  # a gap keeps its letter
        ("Which?\nchoices: A) one B) two", ["one", "two"]),
        ("Which? Options: A: only one", []),  # one marker is not a list
    ],
)
def test_parse_inline_options_styles(question, options):
    assert parse_inline_options(question) == options


def test_mmstar_without_an_option_list_scores_letters_a_to_d():
    example = get_spec("mmstar").normalize({"index": 2, "question": "Which one?", "answer": "d", "image": None}, 0)
    assert (example.answer, len(example.options)) == ("D", MMSTAR_DEFAULT_OPTIONS)


@pytest.mark.parametrize(
    ("key", "letter"), [("B", "B"), ("(c)", "C"), ("b.", "B"), ("(6,2)", "C"), ("Red car", "A"), ("  d ", "D")]
)
def test_answer_letter_accepts_letters_and_option_texts(key, letter):
    assert answer_letter(key, ["red car", "blue", "(6, 2)", "x"], "row 1") == letter


def test_answer_letter_names_the_row_when_the_key_fits_no_option_or_two():
    with pytest.raises(ValueError, match=r"MMBench row 9: field 'answer' = 'E' is neither"):
        answer_letter("E", ["a", "b"], "MMBench row 9")
    with pytest.raises(ValueError, match="the text of 2 options"):
        answer_letter("cat", ["Cat", "cat.", "dog"], "row 3")


@pytest.mark.parametrize(
    ("letters", "answer"),
    [("BCDE", "B"), ("ABD", "D")],  # options that start after A, or skip one
)
def test_mmbench_options_are_never_relettered(letters, answer):
    """Issue 22 case 4's sibling: a row whose option columns are not A, B, C, ... is refused with its row named,
    never renamed to A-D (which would move the answer key to another option)."""
    row = {"index": 5, "question": "Which colour?", "hint": None, "answer": answer, "category": "c", "image": None,
           **{letter: f"colour {letter}" for letter in letters}}  # fmt: skip
    with pytest.raises(ValueError, match=r"MMBench row 5: options \[.*\] are not contiguous from A"):
        get_spec("mmbench").normalize(row, 0)


def test_mmstar_options_that_start_after_a_keep_their_letters():
    """MMStar options written from B on are not read as A-D texts: the letters A-D stay, the texts stay unknown,
    and the key keeps naming the letter the question shows."""
    row = {"index": 9, "question": "Which colour?\nOptions: B: red, C: blue, D: green", "answer": "C",
           "category": "c", "image": None}  # fmt: skip
    example = get_spec("mmstar").normalize(row, 0)
    assert (example.options, example.answer) == ([""] * 4, "C")
