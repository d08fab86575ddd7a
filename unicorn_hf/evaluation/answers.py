"""Answer extraction from free-form generations: yes/no and multiple-choice letters.

Models rarely answer with a bare token: "Yes, there is a cat.", "**B**", "The answer is (C) blue.", "I don't see a
dog". These functions map such text to a canonical answer or to `None` when the text commits to nothing; a `None`
is scored as wrong (never silently as a guess) and counted as `unparsed` in the results.

They are deliberately more lenient than lmms-eval's task scorers (which mostly expect a one-word reply, e.g. POPE's
exact match) and deliberately stricter where lmms-eval guesses (its `mcq_extract.extract_mcq_answer` takes the first
letter of "A or B, it is hard to tell"). `tests/test_evaluation_crosscheck.py` holds the table of inputs on which the
two disagree, each with its reason.
"""

from __future__ import annotations

import functools
import re
import string
from collections.abc import Sequence


_MARKUP = re.compile(r"[*_`#>]+")

# ---------------------------------------------------------------------------------------------------------- yes / no

# Words that commit to an answer. The first one in the text wins: "Yes, it is not red" is a yes.
_YES = r"yes|yeah|yep|correct|true"
_NO = r"no|nope|not|incorrect|false|none|never"
_YES_NO_PATTERN = re.compile(rf"(?<![\w'])(?:(?P<yes>{_YES})|(?P<no>{_NO}))(?![\w'])|(?P<nt>\w+n't)\b", re.IGNORECASE)
# "The answer is no", "Answer: yes": an explicit statement beats the first commitment word ("correct" in "The
# correct answer is no" is a qualifier, not a yes). The last statement wins: chains of thought end with it.
_STATED_YES_NO = re.compile(
    r"\banswer\s*(?:is|would\s+be|should\s+be|will\s+be|must\s+be|[:=\-])\s*[\"'(\[]?\s*(?P<word>yes|no)\b",
    re.IGNORECASE,
)
# A negation that belongs to an admission of uncertainty ("I'm not sure", "it is not clear whether", "I can't tell",
# "I don't know") commits to nothing, so the whole phrase is removed before looking for a commitment word. Narrow on
# purpose: "I am not able to see a dog" and "the water is not clear" are answers (no), not hedges.
_NEGATION = r"(?:not|never|cannot|\w+n't|no\s+way\s+to)\s+(?:[\w%'-]+\s+){0,2}?"
_KNOW = r"(?:tell|say|know|determine|confirm|verify|decide|answer|be\s+(?:sure|certain|determined|told))"
_HEDGE = re.compile(
    rf"(?<![\w']){_NEGATION}(?:sure|certain|{_KNOW}|(?:possible|able)\s+to\s+{_KNOW}"
    r"|enough\s+(?:information|details?|context|evidence)"
    r"|(?:clear|obvious|evident)\s+(?:whether|if|from|what|which|how|who|why))(?![\w'])"
    rf"|(?<![\w'])(?:it|this|that)(?:'s|\s+is|\s+was)\s+{_NEGATION}(?:clear|obvious|evident)(?![\w'])",
    re.IGNORECASE,
)
# "correct" / "true" before a noun qualify it ("the correct answer", "a true statement") and commit to nothing.
_QUALIFIER = re.compile(
    r"(?<![\w'])(?:correct|incorrect|true|false)\s+(?:answer|option|choice|response|one|statement)\b", re.IGNORECASE
)


def extract_yes_no(text: str | None) -> str | None:
    """'yes', 'no', or None when the generation commits to neither.

    Tried in order: the last explicit statement ("The answer is no"); then, with hedges ("I'm not sure", "it is not
    clear", "I can't tell") and qualifiers ("the correct answer") taken out, the first commitment word.

    >>> extract_yes_no("**Yes**, there is a cat in the image.")
    'yes'
    >>> extract_yes_no("There isn't any dog here.")
    'no'
    >>> extract_yes_no("I'm not sure.") is None
    True
    """
    if not text:
        return None
    cleaned = _MARKUP.sub(" ", text)
    # A one-letter reply "Y" / "N" is a yes / no, as lmms-eval's MME parser (Otter's parse_pred_ans) reads it.
    if (letter := cleaned.strip(" .!\n").lower()) in ("y", "n"):
        return "yes" if letter == "y" else "no"
    stated = list(_STATED_YES_NO.finditer(cleaned))
    if stated:
        return stated[-1].group("word").lower()
    committed = _QUALIFIER.sub(" ", _HEDGE.sub(" , ", cleaned))
    match = _YES_NO_PATTERN.search(committed)
    if match is None:
        return None
    return "yes" if match.group("yes") else "no"


# ---------------------------------------------------------------------------------------------------- multiple choice


def option_letters(num_options: int) -> list[str]:
    """['A', 'B', ...] for `num_options` options."""
    if not 1 <= num_options <= len(string.ascii_uppercase):
        raise ValueError(f"num_options must be in [1, 26], got {num_options}.")
    return list(string.ascii_uppercase[:num_options])


def _normalize(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


# Words that follow a letter but never the article "A": "A or B", "A is correct", "A and C".
_NOT_AFTER_ARTICLE = (
    r"or|and|nor|is|was|seems|looks|appears|would|could|should|might|must|can|will|because|since|but|then|vs|versus|to"
)


def _letter(valid: str) -> str:
    """A letter in a statement: upper case, in brackets, or lower case before punctuation / the end ("answer is c.")
    but not the article in "the answer is a cat"."""
    lower = valid.lower()
    return rf"(?:[\(\[]\s*(?P<b>[{valid}{lower}])\s*[\)\]]|(?P<u>[{valid}])|(?P<l>[{lower}])(?=\s*(?:[.,:;)\]!]|$)))"


@functools.cache
def _stated_patterns(valid: str) -> tuple[re.Pattern, ...]:
    """Explicit commitments to a letter, before it ("the answer is C", "Answer: (C)", "my choice is C", "I pick
    option C", "the correct option is C"), after it ("C is correct", "option C is the best"), and a conclusion that
    ends the reply ("A is wrong, B is wrong, so D."). A letter followed by "or <letter>" is a hedge, not a
    commitment."""
    letter = _letter(valid)
    not_hedged = rf"(?![\w'])(?!\s*(?:or|/)\s*[\(\[]?[{valid}](?![\w']))"
    before = (  # keywords in any case; the letter's case matters (see `_letter`)
        r"(?i:\banswer\s*(?:is|would\s+be|should\s+be|will\s+be|must\s+be|[:=\-])"
        r"|\b(?:option|choice|letter)\s*(?:is|would\s+be|should\s+be|[:=])"
        r"|\b(?:correct|right|best|final)\s+(?:option|choice|letter|answer)\s*(?:is|would\s+be|should\s+be|[:=\-])?"
        r"|\b(?:pick|choose|select|go\s+with)\s+(?:option\s+|choice\s+|answer\s+|letter\s+)?)"
    )
    after = r"\s*[\)\]]?\s+(?i:is\s+(?:the\s+)?(?:correct|right|best))\b"
    return (
        re.compile(rf"{before}\s*[:\-]?\s*{letter}{not_hedged}"),
        re.compile(rf"(?<![\w'])(?:(?i:option|choice)\s+)?{letter}(?={after})"),
        re.compile(rf"(?i:\b(?:so|therefore|thus|hence))\s*,?\s+(?:(?i:option|choice)\s+)?{letter}\s*[.!]?\s*$"),
    )


def _last_stated(text: str, valid: str) -> str | None:
    """The letter of the last explicit commitment in `text`, or None."""
    matches = [match for pattern in _stated_patterns(valid) for match in pattern.finditer(text)]
    if not matches:
        return None
    last = max(matches, key=lambda match: match.start())
    return next(value for value in last.groupdict().values() if value).upper()


def _option_hits(reply: str, letters: Sequence[str], options: Sequence[str]) -> list[str]:
    """Letters whose option text occurs in `reply` (both normalised, whole words), where an occurrence inside the
    occurrence of a longer option does not count: options "cat" and "black cat", reply "a black cat" -> the latter."""
    spans: dict[str, list[tuple[int, int]]] = {}
    for letter, option in zip(letters, options, strict=True):
        key = _normalize(option)
        if key:
            spans[letter] = [(m.start(), m.end()) for m in re.finditer(rf"(?<!\S){re.escape(key)}(?!\S)", reply)]
    hits = []
    for letter, own in spans.items():
        others = [span for other, found in spans.items() if other != letter for span in found]
        if any(not any(s <= start and end <= e and (e - s) > (end - start) for s, e in others) for start, end in own):
            hits.append(letter)
    return hits


def extract_choice(text: str | None, options: Sequence[str]) -> str | None:
    """The option letter ('A', 'B', ...) a generation picks among `options` (their texts, in letter order), or None.

    Tried in order, the first rule that gives one letter wins:
    1. the whole reply is a letter, possibly decorated: "B", "(B)", "B.", "**B**", "b";
    2. the last explicit statement: "answer is C", "Answer: (C)", "my choice is C", "I pick option C", "C is
       correct" (a chain of thought that discusses "option A" and "option B" first ends with its commitment);
    3. the reply starts with a letter followed by punctuation: "C. blue", "(C) blue", "C: blue";
    4. exactly one option's text appears in the reply ("it is blue" with option C = "blue"); an option contained in
       a longer one that matched at the same place does not count ("a black cat" is not also "cat");
    5. exactly one valid capital letter stands alone in the reply (not the article "A" before a word, but "A or B"
       is two letters: a hedge commits to nothing).
    """
    if not text:
        return None
    letters = option_letters(len(options))
    valid = "".join(letters)
    cleaned = _MARKUP.sub("", text).strip()

    bare = re.fullmatch(rf"[\(\[]?\s*([{valid}])\s*[\)\]]?[.:,]?", cleaned, re.IGNORECASE)
    if bare:
        return bare.group(1).upper()

    stated = _last_stated(cleaned, valid)
    if stated:
        return stated

    leading = re.match(rf"[\(\[]?([{valid}])(?:[\)\]]|[.:,](?!\w))", cleaned)
    if leading:
        return leading.group(1)

    hits = _option_hits(f" {_normalize(cleaned)} ", letters, options)
    if len(hits) == 1:
        return hits[0]

    # Standalone capitals; "A" followed by a lower-case word is the article ("A cat sits ..."), not an answer.
    standalone = {
        m.group(1)
        for m in re.finditer(rf"(?<![\w'])([{valid}])(?![\w'])", cleaned)
        if not (
            m.group(1) == "A"
            and re.match(r"\s+[a-z]", cleaned[m.end() :])
            and not re.match(rf"\s+(?:{_NOT_AFTER_ARTICLE})\b", cleaned[m.end() :])
        )
    }
    if len(standalone) == 1:
        return standalone.pop()
    return None


__all__ = ["extract_choice", "extract_yes_no", "option_letters"]
