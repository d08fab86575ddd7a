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
