"""Answer extraction on messy generations: yes/no and multiple-choice letters."""

from __future__ import annotations

import pytest

from unicorn_hf.evaluation.answers import expand_contractions, extract_choice, extract_yes_no, option_letters


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


# ----------------------------------------------------------------------------------------------- issue 22, cases 1-2
ANIMALS = ["cat", "dog", "bird", "fish"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The answer is not A.", None),  # case 1: the negated option is never the answer
        ("The answer isn't A.", None),
        ("The answer isn\u2019t A.", None),  # a curly apostrophe
        ("It is definitely not option A.", None),
        ("A is wrong.", None),
        ("A is incorrect.", None),
        ("Option A is not the correct answer.", None),
        ("A can be ruled out.", None),
        ("I'd rule out A.", None),
        ("Anything but A.", None),
        ("Other than A, all of them are animals.", None),
        ("I would not pick option A.", None),
        ("Neither A nor B.", None),
        ("A, B and C are wrong.", None),  # elimination is not a commitment: not D
        ("Not A, but C.", "C"),  # rules one out and names another: the named one
        ("It isn't A; it's B.", "B"),
        ("B, not A", "B"),
        ("A is incorrect, the answer is B.", "B"),
        ("(A) is not correct. (B) is correct.", "B"),
        ("A can't be right; D.", "D"),
        ("I wouldn't pick option A; B.", "B"),
        ("I don't think the answer is A, it is C.", "C"),
        ("It's not A or B. The answer is C.", "C"),
        ("Neither A nor B, so C.", "C"),
        ("A, B and C are wrong, so D.", "D"),
        ("The answer is A. Wait, A is wrong; it is B.", "B"),
        ("I would go with B rather than A.", "B"),
        ("Let me rule out A and B: the answer is D.", "D"),
        ("It is not a cat.", None),  # an option ruled out by its text
        ("It is not a cat, it is a dog.", "B"),
        ("There is no cat; a dog.", "B"),
        ("A wrong, B right, so B.", "B"),
        ("The answer is B. The image does not contain A or C.", "B"),
        ("B out of the four is right.", "B"),  # "out" rules out only after a verb ("A is out")
        ("A is out.", None),
        ("Not sure, but A.", "A"),  # a hedge, not a negation of A
        ("I'm not sure but I think A", "A"),
    ],
)
def test_extract_choice_never_picks_a_ruled_out_option(text, expected):
    assert extract_choice(text, ANIMALS) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("It is not a tabby cat, it is a blue boat.", "B"),
        ("It isn't really a red car.", None),
        ("A red car is wrong; a blue boat.", "B"),
    ],
)
def test_extract_choice_option_texts_ruled_out(text, expected):
    assert extract_choice(text, OPTIONS) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("It isn't clear, but yes.", "yes"),  # case 2: a contracted hedge reads as its full form
        ("It is not clear, but yes.", "yes"),
        ("It\u2019s not clear, but yes.", "yes"),
        ("It's unclear whether there is a dog.", None),
        ("I can't tell, but yes.", "yes"),
        ("I cannot tell, but no.", "no"),
        ("I'm unable to tell.", None),
        ("I am not able to tell.", None),
        ("I'm unsure.", None),
        ("It's impossible to say.", None),
        ("I have no idea.", None),
        ("I can't see a dog.", "no"),  # statements, not hedges
        ("I cannot see a dog.", "no"),
        ("I'm unable to see a dog.", "no"),
        ("There isn\u2019t a dog.", "no"),
        ("The answer is not yes.", "no"),
        ("The answer isn't no.", "yes"),
    ],
)
def test_extract_yes_no_contractions_read_as_their_full_forms(text, expected):
    assert extract_yes_no(text) == expected


def test_expand_contractions():
    assert expand_contractions("It isn\u2019t clear; I can't tell, I'm unable to.") == (
        "It is not clear; I can not tell, I am not able to."
    )
    assert expand_contractions("The dog's bowl won't fit; cannot.") == "The dog's bowl will not fit; can not."
