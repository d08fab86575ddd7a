"""Answer extraction from free-form generations: yes/no and multiple-choice letters.

Models rarely answer with a bare token: "Yes, there is a cat.", "**B**", "The answer is (C) blue.", "I don't see a
dog". These functions map such text to a canonical answer or to `None` when the text commits to nothing; a `None`
is scored as wrong (never silently as a guess) and counted as `unparsed` in the results.

They are deliberately more lenient than lmms-eval's task scorers (which mostly expect a one-word reply, e.g. POPE's
exact match) and deliberately stricter where lmms-eval guesses (its `mcq_extract.extract_mcq_answer` takes the first
letter of "A or B, it is hard to tell"). `tests/test_evaluation_crosscheck.py` holds the table of inputs on which the
two disagree, each with its reason.

Both read contractions as their full forms ("isn't" = "is not", "can't" = "can not", "I'm unable" = "I am not able",
`expand_contractions`), so a hedge or a negation means the same in either spelling.
"""

from __future__ import annotations

import functools
import re
import string
from collections.abc import Sequence


_MARKUP = re.compile(r"[*_`#>]+")

# ------------------------------------------------------------------------------------------------------ contractions

_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "`": "'"})
# Order matters: the irregular forms before the general "n't", "can't" before it ("ca not" otherwise).
_CONTRACTIONS = tuple(
    (re.compile(pattern, re.IGNORECASE), replacement)
    for pattern, replacement in (
        (r"\b(can)'t\b", r"\1 not"),
        (r"\bwon't\b", "will not"),
        (r"\bshan't\b", "shall not"),
        (r"\bain't\b", "is not"),
        (r"\b(\w+)n't\b", r"\1 not"),
        (r"\b(can)(not)\b", r"\1 \2"),
        (r"\b(I)'m\b", r"\1 am"),
        (r"\b(it|that|this|there|here|what|which|who|he|she)'s\b", r"\1 is"),
        (r"\b(\w+)'re\b", r"\1 are"),
        (r"\b(\w+)'ve\b", r"\1 have"),
        (r"\b(\w+)'ll\b", r"\1 will"),
        (r"\b(\w+)'d\b", r"\1 would"),
        # Negative adjectives hedge or deny as "not <adjective>" does: "unclear" is "not clear".
        (r"\bun(able|clear|certain|sure)\b", r"not \1"),
        (r"\bimpossible\b", "not possible"),
    )
)


def expand_contractions(text: str) -> str:
    """`text` with negations and contractions in their full forms, so that one pattern reads both spellings:
    "isn't" -> "is not", "can't" / "cannot" -> "can not", "won't" -> "will not", "I'm" -> "I am", "it's" -> "it is",
    "unable" / "unclear" / "uncertain" / "unsure" -> "not able" / ..., "impossible" -> "not possible". Curly
    apostrophes count as straight ones. Possessives ("the dog's") are left alone.

    >>> expand_contractions("It isn\u2019t clear; I can't tell, I'm unable to.")
    'It is not clear; I can not tell, I am not able to.'
    """
    text = text.translate(_APOSTROPHES)
    for pattern, replacement in _CONTRACTIONS:
        text = pattern.sub(replacement, text)
    return text


# ---------------------------------------------------------------------------------------------------------- yes / no

# Words that commit to an answer. The first one in the text wins: "Yes, it is not red" is a yes. The text is read
# with its contractions expanded, so "not" covers "isn't", "don't", "can't".
_YES = r"yes|yeah|yep|correct|true"
_NO = r"no|nope|not|incorrect|false|none|never"
_YES_NO_PATTERN = re.compile(rf"(?<![\w'])(?:(?P<yes>{_YES})|(?P<no>{_NO}))(?![\w'])", re.IGNORECASE)
# "The answer is no", "Answer: yes": an explicit statement beats the first commitment word ("correct" in "The
# correct answer is no" is a qualifier, not a yes). The last statement wins: chains of thought end with it. "The
# answer is not yes" states a no.
_STATED_YES_NO = re.compile(
    r"\banswer\s*(?:is|would\s+be|should\s+be|will\s+be|must\s+be|[:=\-])\s*(?P<neg>not\s+)?[\"'(\[]?\s*"
    r"(?P<word>yes|no)\b",
    re.IGNORECASE,
)
# A negation that belongs to an admission of uncertainty ("I'm not sure", "it is not clear whether", "I can't tell",
# "I don't know", "no idea") commits to nothing, so the whole phrase is removed before looking for a commitment word.
# Narrow on purpose: "I am not able to see a dog" and "the water is not clear" are answers (no), not hedges.
_NEGATION = r"(?:not|never|no\s+way\s+to)\s+(?:[\w%'-]+\s+){0,2}?"
_KNOW = r"(?:tell|say|know|determine|confirm|verify|decide|answer|be\s+(?:sure|certain|determined|told))"
_HEDGE = re.compile(
    rf"(?<![\w']){_NEGATION}(?:sure|certain|{_KNOW}|(?:possible|able)\s+to\s+{_KNOW}"
    r"|enough\s+(?:information|details?|context|evidence)"
    r"|(?:clear|obvious|evident)\s+(?:whether|if|from|what|which|how|who|why))(?![\w'])"
    rf"|(?<![\w'])(?:it|this|that)(?:'s|\s+is|\s+was)\s+{_NEGATION}(?:clear|obvious|evident)(?![\w'])"
    r"|(?<![\w'])no\s+(?:idea|clue)(?![\w'])",
    re.IGNORECASE,
)
# "correct" / "true" before a noun qualify it ("the correct answer", "a true statement") and commit to nothing.
_QUALIFIER = re.compile(
    r"(?<![\w'])(?:correct|incorrect|true|false)\s+(?:answer|option|choice|response|one|statement)\b", re.IGNORECASE
)


def extract_yes_no(text: str | None) -> str | None:
    """'yes', 'no', or None when the generation commits to neither.

    Tried in order, on the text with its contractions expanded (`expand_contractions`: "isn't" reads as "is not",
    "I'm unable" as "I am not able"): the last explicit statement ("The answer is no", "the answer is not yes" = no);
    then, with hedges ("I'm not sure", "it is not clear", "I can't tell", "no idea") and qualifiers ("the correct
    answer") taken out, the first commitment word ("I can't see a dog" = no).

    >>> extract_yes_no("**Yes**, there is a cat in the image.")
    'yes'
    >>> extract_yes_no("There isn't any dog here.")
    'no'
    >>> extract_yes_no("I'm not sure.") is None
    True
    """
    if not text:
        return None
    cleaned = expand_contractions(_MARKUP.sub(" ", text))
    # A one-letter reply "Y" / "N" is a yes / no, as lmms-eval's MME parser (Otter's parse_pred_ans) reads it.
    if (letter := cleaned.strip(" .!\n").lower()) in ("y", "n"):
        return "yes" if letter == "y" else "no"
    stated = list(_STATED_YES_NO.finditer(cleaned))
    if stated:
        word = stated[-1].group("word").lower()
        return ({"yes": "no", "no": "yes"}[word]) if stated[-1].group("neg") else word
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


# Words that follow a letter but never the article "A": "A or B", "A is correct", "A and C", "A does not fit".
_NOT_AFTER_ARTICLE = (
    r"or|and|nor|is|are|was|were|seems|looks|appears|sounds|would|could|should|might|must|may|can|will|does|do|did"
    r"|has|because|since|but|then|vs|versus|to"
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


# ------------------------------------------------------------------------------- options a reply rules out (negation)
# The text is read with its contractions expanded, so "isn't A" is "is not A" and "A can't be right" is "A can not
# be right". Cues before the ruled-out letter(s): "not A", "never A", "neither A nor B", "rule out A", "exclude A",
# "eliminate A", "reject A", "discard A", "cross out A", "anything but A", "other than A", "except A", "rather than
# A", "instead of A".
_NEGATION_CUES = (
    r"not|never|neither|rul(?:e|es|ed|ing)\s+out|exclud(?:e|es|ed|ing)|eliminat(?:e|es|ed|ing)|reject(?:s|ed|ing)?"
    r"|discard(?:s|ed|ing)?|cross(?:es|ed|ing)?\s+out|anything\s+but|other\s+than|except(?:\s+for)?|rather\s+than"
    r"|instead\s+of"
)
# Words that end the reach of a cue (they open another clause) or make it a hedge ("not sure A", "not only A").
_CUE_STOPS = (
    r"so|but|therefore|thus|hence|then|because|since|and|or|nor|while|whereas|yet|although|though|however|if"
    r"|sure|certain|know|clear|only|just|necessarily|also"
)
# Up to `_CUE_REACH` words may stand between a cue and the letter: "is definitely not option A", "I do not think it
# is A", "would not pick A".
_CUE_REACH = 3
_FILLERS = rf"(?:(?!(?i:{_CUE_STOPS})\b)[\w'-]+\s+){{0,{_CUE_REACH}}}"
# Predicates after the ruled-out letter(s) or option text: "A is wrong", "A and B are incorrect", "(A) is not
# correct", "A is not the answer", "A can be ruled out", "A does not fit", "A: wrong".
_REJECTED = (
    r"(?:(?:is|are|was|were|seems?|looks?|appears?|sounds?)\s+(?:to\s+be\s+)?)?"
    r"(?:(?:definitely|clearly|certainly|also|obviously)\s+)?(?:wrong|incorrect|false)"
    r"|(?:is|are|was|were|seems?|looks?|appears?|sounds?)\s+(?:to\s+be\s+)?"
    r"(?:(?:definitely|clearly|certainly|also|obviously)\s+)?"
    r"(?:impossible|unlikely|implausible|ruled\s+out|eliminated|excluded|out)"
    r"|(?:is|are|was|were|would\s+be|seems?\s+to\s+be)\s+(?:(?:definitely|clearly|certainly)\s+)?not\s+"
    r"(?:the\s+)?(?:(?:correct|right|best|true)(?:\s+(?:answer|option|choice|one))?|it|answer|case)"
    r"|(?:can|could|should|must|may)\s+(?:be\s+)?(?:ruled\s+out|eliminated|excluded|discarded|rejected|dismissed)"
    r"|(?:can|could|does|do|would|will)\s+not\s+(?:be\s+(?:right|correct|true|it|the\s+answer)|fit|match|apply|work)"
    r"|[:\-]\s*(?:wrong|incorrect|false)"
)
# A negation earlier in the clause of an explicit statement negates it: "I would not pick option A", "I do not
# think the answer is A". The clause starts after punctuation or a conjunction.
_CLAUSE_START = re.compile(r"[.;:!?,]|(?i:\b(?:but|so|and|then|therefore|thus|hence|because|since|although|though"
                           r"|however|whereas|while|yet)\b)")  # fmt: skip
_NEGATED_CLAUSE = re.compile(r"(?i:(?<![\w'])(?:not|never)(?![\w'])(?!\s+(?:sure|certain|only|just|necessarily)\b))")


def _plain_letter(valid: str) -> str:
    """`_letter` without groups, for lists of letters: an upper-case letter ("A" not when it is the article before a
    word: "not A cat"), one in brackets, or a lower-case one before punctuation or the end."""
    lower = valid.lower()
    return (
        rf"(?:[\(\[]\s*[{valid}{lower}]\s*[\)\]]"
        rf"|(?<![\w'])A(?![\w'])(?!\s+(?!(?:{_NOT_AFTER_ARTICLE})\b)[a-z])"
        rf"|(?<![\w'])[{valid[1:] or '_'}](?![\w'])"
        rf"|(?<![\w'])[{lower}](?=\s*(?:[.,:;)\]!]|$)))"
    )


@functools.cache
def _rejection_patterns(valid: str) -> tuple[re.Pattern, re.Pattern, re.Pattern]:
    """(a cue before a list of letters, a list of letters before a rejecting predicate, one letter) for `valid`."""
    mention = rf"(?:(?i:option|choice|letter|answer)\s+)?{_plain_letter(valid)}"
    letters = rf"(?P<letters>{mention}(?:(?:\s*,\s*{mention})*\s*,?\s*(?i:or|nor|and)\s+{mention})?)"
    before = re.compile(rf"(?<![\w'])(?i:{_NEGATION_CUES})\s+{_FILLERS}{letters}")
    after = re.compile(rf"(?<![\w']){letters}\s*(?i:{_REJECTED})(?![\w'])")
    return before, after, re.compile(_plain_letter(valid))


def _ruled_out_letters(text: str, valid: str) -> set[str]:
    """Letters that `text` rules out by name: "not A", "it is not option A or B", "neither A nor B", "rule out A",
    "anything but A", "A is wrong", "A and B are incorrect", "A is not the answer", "A can be ruled out"."""
    before, after, single = _rejection_patterns(valid)
    ruled = set()
    for pattern in (before, after):
        for match in pattern.finditer(text):
            ruled |= {found.group(0).strip("()[] \t\n").upper() for found in single.finditer(match.group("letters"))}
    return ruled


def _negated_statement(text: str, start: int) -> bool:
    """Whether the clause of `text` before `start` holds a negation ("I would not pick ...")."""
    clause = text[:start]
    if breaks := list(_CLAUSE_START.finditer(clause)):
        clause = clause[breaks[-1].end() :]
    return _NEGATED_CLAUSE.search(clause) is not None


def _stated_letters(text: str, valid: str) -> list[tuple[int, str, bool]]:
    """(position, letter, negated) of every explicit commitment in `text`, in order."""
    stated = []
    for pattern in _stated_patterns(valid):
        for match in pattern.finditer(text):
            letter = next(value for value in match.groupdict().values() if value).upper()
            stated.append((match.start(), letter, _negated_statement(text, match.start())))
    return sorted(stated)


# Cues before an option's text in the normalised reply (lower case, no punctuation, so no clause boundaries): those
# of letters, and "no" / "without" ("there is no cat", "a street without cars"), with only determiners and adverbs
# in between ("it is not really a cat", "not the cat").
_TEXT_FILLERS = r"a|an|the|any|some|one|single|really|actually|definitely|clearly|certainly|even"
_TEXT_NEGATION = re.compile(
    rf"(?:^|\s)(?:{_NEGATION_CUES}|no|without)\s+(?:(?:{_TEXT_FILLERS})\s+){{0,2}}$", re.IGNORECASE
)
_TEXT_REJECTED = re.compile(rf"\s+(?:{_REJECTED})(?!\S)", re.IGNORECASE)


def _option_hits(reply: str, letters: Sequence[str], options: Sequence[str]) -> tuple[list[str], set[str]]:
    """(letters whose option text occurs in `reply`, letters whose text occurs negated), both normalised, whole
    words. An occurrence inside the occurrence of a longer option does not count: options "cat" and "black cat",
    reply "a black cat" -> the latter. An occurrence after a negation cue ("not a cat", "there is no cat") or before
    a rejecting predicate ("a cat is wrong") rules its option out."""
    spans: dict[str, list[tuple[int, int]]] = {}
    for letter, option in zip(letters, options, strict=True):
        key = _normalize(expand_contractions(option))
        if key:
            spans[letter] = [(m.start(), m.end()) for m in re.finditer(rf"(?<!\S){re.escape(key)}(?!\S)", reply)]
    hits, negated = [], set()
    for letter, own in spans.items():
        others = [span for other, found in spans.items() if other != letter for span in found]
        counted = [
            (start, end)
            for start, end in own
            if not any(s <= start and end <= e and (e - s) > (end - start) for s, e in others)
        ]
        if any(_TEXT_NEGATION.search(reply[:start]) or _TEXT_REJECTED.match(reply[end:]) for start, end in counted):
            negated.add(letter)
        elif counted:
            hits.append(letter)
    return hits, negated


def extract_choice(text: str | None, options: Sequence[str]) -> str | None:
    """The option letter ('A', 'B', ...) a generation picks among `options` (their texts, in letter order), or None.

    The reply is read with its contractions expanded (`expand_contractions`). First, the options it rules out are
    collected; a ruled-out option is never the answer:
    - a letter after a negation cue, at most three words away and in the same clause: "not A", "isn't A", "is
      definitely not option A", "I don't think it's A", "neither A nor B", "not A or B", "rule out A", "exclude A",
      "eliminate A", "anything but A", "other than A", "except A", "rather than A", "instead of A";
    - a letter before a rejecting predicate: "A is wrong", "A and B are incorrect", "(A) is not correct", "A isn't
      the answer", "A can be ruled out", "A can't be right", "A does not fit", "A: wrong";
    - an explicit statement negated in its clause: "I wouldn't pick option A", "I don't think the answer is A";
    - an option's text after a cue ("it is not a cat", "there is no cat") or before such a predicate.
    Ruling options out is no answer by itself ("not A, B or C" gives None, not D: elimination is not a commitment).

    Then, tried in order, the first rule that gives one letter that is not ruled out wins:
    1. the whole reply is a letter, possibly decorated: "B", "(B)", "B.", "**B**", "b";
    2. the last explicit statement: "answer is C", "Answer: (C)", "my choice is C", "I pick option C", "C is
       correct" (a chain of thought that discusses "option A" and "option B" first ends with its commitment);
    3. the reply starts with a letter followed by punctuation: "C. blue", "(C) blue", "C: blue";
    4. exactly one option's text appears in the reply ("it is blue" with option C = "blue"); an option contained in
       a longer one that matched at the same place does not count ("a black cat" is not also "cat");
    5. exactly one valid capital letter stands alone in the reply (not the article "A" before a word, but "A or B"
       is two letters: a hedge commits to nothing). So "not A, but C" and "It isn't A; it's B" give the named one.
    """
    if not text:
        return None
    letters = option_letters(len(options))
    valid = "".join(letters)
    cleaned = expand_contractions(_MARKUP.sub("", text)).strip()

    bare = re.fullmatch(rf"[\(\[]?\s*([{valid}])\s*[\)\]]?[.:,]?", cleaned, re.IGNORECASE)
    if bare:
        return bare.group(1).upper()

    stated = _stated_letters(cleaned, valid)
    hits, text_ruled = _option_hits(f" {_normalize(cleaned)} ", letters, options)
    ruled = _ruled_out_letters(cleaned, valid) | text_ruled | {letter for _, letter, negated in stated if negated}

    committed = [letter for _, letter, negated in stated if not negated and letter not in ruled]
    if committed:
        return committed[-1]

    leading = re.match(rf"[\(\[]?([{valid}])(?:[\)\]]|[.:,](?!\w))", cleaned)
    if leading and leading.group(1) not in ruled:
        return leading.group(1)

    hits = [letter for letter in hits if letter not in ruled]
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
    } - ruled
    if len(standalone) == 1:
        return standalone.pop()
    return None


__all__ = ["expand_contractions", "extract_choice", "extract_yes_no", "option_letters"]
