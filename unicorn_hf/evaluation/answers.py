"""Answer extraction from free-form generations: yes/no and multiple-choice letters.

Models rarely answer with a bare token: "Yes, there is a cat.", "**B**", "The answer is (C) blue.", "I don't see a
dog". These functions map such text to a canonical answer or to `None` when the text commits to nothing; a `None`
is scored as wrong (never silently as a guess) and counted as `unparsed` in the results.
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence


# Words that commit to an answer. The first one in the text wins: "Yes, it is not red" is a yes.
_YES = r"yes|yeah|yep|correct|true"
_NO = r"no|nope|not|incorrect|false|none|never"
_YES_NO_PATTERN = re.compile(rf"(?<![\w'])(?:(?P<yes>{_YES})|(?P<no>{_NO}))(?![\w'])|(?P<nt>\w+n't)\b", re.IGNORECASE)
_MARKUP = re.compile(r"[*_`#>]+")


def extract_yes_no(text: str | None) -> str | None:
    """'yes', 'no', or None when the generation commits to neither.

    >>> extract_yes_no("**Yes**, there is a cat in the image.")
    'yes'
    >>> extract_yes_no("There isn't any dog here.")
    'no'
    """
    if not text:
        return None
    match = _YES_NO_PATTERN.search(_MARKUP.sub(" ", text))
    if match is None:
        return None
    return "yes" if match.group("yes") else "no"


def option_letters(num_options: int) -> list[str]:
    """['A', 'B', ...] for `num_options` options."""
    if not 1 <= num_options <= len(string.ascii_uppercase):
        raise ValueError(f"num_options must be in [1, 26], got {num_options}.")
    return list(string.ascii_uppercase[:num_options])


def _normalize(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def extract_choice(text: str | None, options: Sequence[str]) -> str | None:
    """The option letter ('A', 'B', ...) a generation picks among `options` (their texts, in letter order), or None.

    Tried in order, the first rule that gives one letter wins:
    1. the whole reply is a letter, possibly decorated: "B", "(B)", "B.", "**B**", "b";
    2. an explicit statement: "answer is C", "Answer: (C)", "option C", "choice C";
    3. the reply starts with a letter followed by punctuation: "C. blue", "(C) blue", "C: blue";
    4. exactly one option's text appears in the reply ("it is blue" with option C = "blue");
    5. exactly one valid capital letter stands alone in the reply (not the article "A" before a word).
    """
    if not text:
        return None
    letters = option_letters(len(options))
    valid = "".join(letters)
    cleaned = _MARKUP.sub("", text).strip()

    bare = re.fullmatch(rf"[\(\[]?\s*([{valid}])\s*[\)\]]?[.:,]?", cleaned, re.IGNORECASE)
    if bare:
        return bare.group(1).upper()

    stated = re.search(
        rf"\b(?:answer|option|choice)\s*(?:is|:|would be|should be)?\s*[:\-]?\s*[\(\[]?([{valid}])\b(?![\w'])",
        cleaned,
        re.IGNORECASE,
    )
    if stated:
        return stated.group(1).upper()

    leading = re.match(rf"[\(\[]?([{valid}])(?:[\)\]]|[.:,](?!\w))", cleaned)
    if leading:
        return leading.group(1)

    reply = f" {_normalize(cleaned)} "
    hits = [
        letter
        for letter, option in zip(letters, options, strict=True)
        if _normalize(option) and f" {_normalize(option)} " in reply
    ]
    if len(hits) == 1:
        return hits[0]

    # Standalone capitals; "A" followed by a lower-case word is the article ("A cat sits ..."), not an answer.
    standalone = {
        m.group(1)
        for m in re.finditer(rf"(?<![\w'])([{valid}])(?![\w'])", cleaned)
        if not (m.group(1) == "A" and re.match(r"\s+[a-z]", cleaned[m.end() :]))
    }
    if len(standalone) == 1:
        return standalone.pop()
    return None


__all__ = ["extract_choice", "extract_yes_no", "option_letters"]
