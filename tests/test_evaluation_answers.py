"""Answer extraction on messy generations: yes/no and multiple-choice letters."""

from __future__ import annotations

import pytest

from unicorn_hf.evaluation.answers import extract_choice, extract_yes_no, option_letters


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Yes", "yes"),
        ("yes.", "yes"),
        ("**Yes**, there is a cat in the image.", "yes"),
        ("No, there is no dog.", "no"),
        ("There isn't any dog in this picture.", "no"),
        ("There is no cat.", "no"),
        ("I do not see a rocket.", "no"),
        ("Yes, although it is not red.", "yes"),  # the first commitment wins
        ("The answer is yes", "yes"),
        ("NO", "no"),
        ("Correct.", "yes"),
        ("Nothing to say; maybe a bird", None),  # "Nothing" is not "no"
        ("A cat sits on a mat.", None),
        ("", None),
        (None, None),
    ],
)
def test_extract_yes_no(text, expected):
    assert extract_yes_no(text) == expected


OPTIONS = ["a red car", "a blue boat", "a tabby cat", "a green field"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("B", "B"),
        ("(C)", "C"),
        ("D.", "D"),
        ("**A**", "A"),
        ("b", "B"),
        ("The answer is (C) a tabby cat.", "C"),
        ("Answer: D", "D"),
        ("I would pick option B because of the water.", "B"),
        ("C. a tabby cat", "C"),
        ("(A) a red car", "A"),
        ("It shows a tabby cat lying down.", "C"),  # option text, no letter
        ("A cat, so C", "C"),  # the article "A" is not an answer
        ("A tabby cat or a blue boat?", None),  # two option texts: no commitment
        ("Both B and D look plausible", None),  # two letters: no commitment
        ("E", None),  # not among the 4 options
        ("I don't know", None),
        ("", None),
    ],
)
def test_extract_choice(text, expected):
    assert extract_choice(text, OPTIONS) == expected


def test_extract_choice_respects_the_number_of_options():
    assert extract_choice("E", ["x", "y", "z", "w", "v"]) == "E"
    assert extract_choice("The answer is E", ["x", "y"]) is None


def test_option_letters():
    assert option_letters(4) == ["A", "B", "C", "D"]
    with pytest.raises(ValueError, match="num_options"):
        option_letters(0)


def test_yes_no_hedges_and_qualifiers_commit_to_nothing():
    """Issue 13 case 3: "not" inside a hedge and "correct" as a qualifier are no commitment."""
    generations = ["I'm not sure.", "It is not clear, but yes.", "The correct answer is no."]
    assert [extract_yes_no(g) for g in generations] == [None, "yes", "no"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("I don't know.", None),
        ("I can't tell from this picture.", None),
        ("It's not possible to determine whether there is a dog.", None),
        ("I'm not entirely sure, but I think no.", "no"),
        ("Not sure.", None),
        ("It is not clear whether there is a dog.", None),
        ("There is not enough information to answer.", None),
        ("I am not able to see a dog.", "no"),  # an answer, not a hedge: "able" only hedges "able to tell"
        ("The water is not clear.", "no"),  # "not clear" only hedges "it is not clear" / "not clear whether"
        ("No, I can't say there is.", "no"),
        ("There is not a dog, the answer is no.", "no"),
        ("At first I thought no, but the answer is yes.", "yes"),  # the last explicit statement wins
        ("That is correct.", "yes"),
        ("That is the correct option: no", "no"),
        ("y", "yes"),
        ("N.", "no"),
    ],
)
def test_extract_yes_no_hedges_statements_and_letters(text, expected):
    assert extract_yes_no(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("A or B, it is hard to tell.", None),  # a hedge between two letters
        ("Option A shows a red car and option C a cat; the answer is C.", "C"),  # chain of thought, then the answer
        ("The answer is C, not A.", "C"),
        ("The answer is a tabby cat.", "C"),  # the article is not the letter A
        ("A is wrong, B is wrong, so D.", "D"),
        ("C is correct", "C"),
        ("My choice is (d).", "D"),
        ("At first A, but the answer is B.", "B"),
        ("The answer is B or C.", None),
    ],
)
def test_extract_choice_chains_of_thought_and_hedges(text, expected):
    assert extract_choice(text, OPTIONS) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [("a black cat", "B"), ("the cat", "A"), ("a black cat and a cat", None), ("a cat and a dog", None)],
)
def test_extract_choice_option_texts_that_contain_each_other(text, expected):
    assert extract_choice(text, ["cat", "black cat", "dog", "bird"]) == expected
