"""Pydantic validation of the stage-2 dialogues in an LLM reply.

The reply's JSON values are recovered by `unicorn_hf.synthesis.json_recovery`; `parse_dialogue` picks the reply's
payload among those that hold valid turns by a stated rule (in the expected schema, the most turns, the last), so an
example object quoted in the reasoning or the prose, filled in or not, or a "[3]" before the payload cannot win over
the payload, whatever `min_turns` is. A failure raises
`DialogueParseError`, whose `reason` is a short drop reason for the `DropLog`:

    empty_generation  no_json  truncated_json  invalid_json     the reply holds no usable JSON
    schema_mismatch                                             JSON, but no list of valid turns
    placeholder_turns                                           only template slots: "...", "", "N/A", "<answer>"
    mc_answer_unmapped  mc_answer_ambiguous                     an MC answer that names no option, or two
    mc_options_unlabelled                                       MC options as a mapping whose keys are not one
                                                                letter or number each, or repeat one
    too_few_turns                                               the payload's valid turns are fewer than `min_turns`
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from unicorn_hf.data_contract import option_key
from unicorn_hf.synthesis.json_recovery import DialogueParseError, json_candidates


LETTERS = "ABCD"
# Which failure is reported when no JSON value of a reply validates: the one that got furthest.
_REASON_RANK = {
    "too_few_turns": 4,
    "mc_answer_ambiguous": 3,
    "mc_answer_unmapped": 3,
    "mc_options_unlabelled": 3,
    "placeholder_turns": 2,
    "schema_mismatch": 1,
}


_PLACEHOLDER = re.compile(
    r"[\s.\u2026_\-?*]*|n/?a|tbd|todo|null|<[^<>]*>|\[[^\[\]]*\]|\{[^{}]*\}"
    r"|(?:your\s+)?(?:question|answer|option|text|string)(?:\s+(?:here|\d+))?",
    re.IGNORECASE,
)


def is_placeholder(text: str) -> bool:
    """True for a template slot that carries no content ("...", "", "N/A", "<answer>")."""
    return _PLACEHOLDER.fullmatch(text.strip()) is not None


def _no_placeholder(value: str, field: str) -> str:
    if is_placeholder(value):
        raise PydanticCustomError(
            "placeholder", "{field} {value} is a placeholder", {"field": field, "value": repr(value)}
        )
    return value


class _Turn(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    question: str = Field(validation_alias=AliasChoices("question", "Question", "q", "user", "human"))

    @field_validator("question")
    @classmethod
    def _question_is_content(cls, value: str) -> str:
        return _no_placeholder(value, "question")


class QATurn(_Turn):
    answer: str = Field(validation_alias=AliasChoices("answer", "Answer", "a", "assistant", "gpt", "response"))

    @field_validator("answer")
    @classmethod
    def _answer_is_content(cls, value: str) -> str:
        return _no_placeholder(value, "answer")


# A letter label in front of an option or answer: "A. red", "(b) blue", "C) green", "D: white", "[A] one".
_LETTER_PREFIX = re.compile(r"\s*[\(\[]?\s*([A-Za-z])\s*(?:[\)\]]\s*[.:]?|[.:])\s+(.*)", re.DOTALL)
_BARE_LETTER = re.compile(r"[\(\[]?\s*([A-Da-d])\s*[\)\]]?[.:]?")


def _strip_label(option: Any, letter: str) -> str:
    """`option` without a leading label of `letter` ("B) two" -> "two" for B); any other text stays as it is."""
    text = str(option).strip()
    match = _LETTER_PREFIX.fullmatch(text)
    return match.group(2).strip() if match and match.group(1).upper() == letter else text


_OPTION_ALIASES = ("options", "Options", "choices", "Choices")
_ANSWER_ALIASES = ("answer", "Answer", "correct", "correct_answer")
# The label of an option given as a mapping key: "B", "b", "(B)", "B.", "B)", "Option B", "option_b", "choice 2", "2".
_KEY_LABEL = re.compile(
    r"\s*(?:(?:option|choice)[\s_\-]*)?[\(\[]?\s*([A-Za-z]|\d{1,2})\s*[\)\]]?[.:]?\s*", re.IGNORECASE
)
# An answer that is a label alone ("B", "(b)", "2."), or a label with punctuation before its option's text ("B. red",
# "(2) red"); "A red car" is text.
_BARE_LABEL = re.compile(r"\s*[\(\[]?\s*([A-Za-z]|\d{1,2})\s*[\)\]]?\s*[.:]?\s*")
_LABEL_PREFIX = re.compile(r"\s*[\(\[]?\s*([A-Za-z]|\d{1,2})\s*(?:[\)\]]\s*[.:]?|[.:])\s+(.*)", re.DOTALL)


def _relabel_mapping(options: dict, answer: Any) -> tuple[list[str], Any]:
    """Options given as a mapping {label: text} -> (texts in label order, the answer with its label moved along).

    The options are rendered with the letters A, B, C, ... in label order, so a reply's own labels B-E (or 1-4)
    become A-D; an answer that names an option by its label ("B", "(b)", "B. red", "2") is rewritten to the new
    letter of that same option, and one that names a label of the same kind that the mapping lacks (say "A" among
    keys B-E) names no option (`mc_answer_unmapped`). An answer given as text, or a label of the other kind (a
    letter among numbered options: the rendered letter), is left to the answer check. Keys that are not one letter
    or one number each, mix the two, or repeat a label raise `mc_options_unlabelled`."""
    if not options:
        return [], answer  # the count check names it
    labels = {key: _KEY_LABEL.fullmatch(str(key)) for key in options}
    found = {key: match.group(1).upper() for key, match in labels.items() if match}
    kinds = {label.isdigit() for label in found.values()}
    if len(found) != len(options) or len(set(found.values())) != len(found) or len(kinds) != 1:
        raise PydanticCustomError(
            "mc_options_unlabelled", "option keys {keys} are not one distinct letter or number each",
            {"keys": repr(list(options))},
        )  # fmt: skip
    numbered = kinds.pop()
    ordered = sorted(options, key=lambda key: int(found[key]) if numbered else found[key])
    # Past Z there is no letter to render; the count check rejects such a turn anyway.
    new_letter = {found[key]: letter for key, letter in zip(ordered, string.ascii_uppercase, strict=False)}
    texts = [str(options[key]).strip() if numbered else _strip_label(options[key], found[key]) for key in ordered]
    if isinstance(answer, int) and not isinstance(answer, bool):
        answer = str(answer)
    if not isinstance(answer, str):
        return texts, answer
    if bare := _BARE_LABEL.fullmatch(answer):
        old, rest = bare.group(1).upper(), None
    elif prefixed := _LABEL_PREFIX.fullmatch(answer):
        old, rest = prefixed.group(1).upper(), prefixed.group(2).strip()
    else:
        return texts, answer
    if old.isdigit() != numbered:
        return texts, answer
    if old in new_letter:
        return texts, new_letter[old] + (f". {rest}" if rest else "")
    if rest is not None and any(option_key(answer) == option_key(text) for text in texts):
        return texts, answer  # "E. coli" is an option's text, not option E
    raise PydanticCustomError(
        "mc_answer_unmapped", "answer {answer} names label {label}, which none of the options {keys} has",
        {"answer": repr(answer), "label": old, "keys": repr(list(options))},
    )  # fmt: skip


class MCTurn(_Turn):
    options: list[str] = Field(validation_alias=AliasChoices(*_OPTION_ALIASES))
    answer: str = Field(validation_alias=AliasChoices(*_ANSWER_ALIASES))

    @model_validator(mode="before")
    @classmethod
    def _options_mapping_as_list(cls, data: Any) -> Any:
        """Options given as a mapping ({"B": "red", "C": "blue", ...}, or a list of one-key mappings) become a list in
        label order, and a letter answer moves with its option (`_relabel_mapping`)."""
        if not isinstance(data, dict):
            return data
        key = next((alias for alias in _OPTION_ALIASES if alias in data), None)
        options = data.get(key)
        if isinstance(options, list) and options and all(isinstance(o, dict) and len(o) == 1 for o in options):
            merged = {k: v for option in options for k, v in option.items()}
            options = merged if len(merged) == len(options) else options
        if not isinstance(options, dict):
            return data
        answer_key = next((alias for alias in _ANSWER_ALIASES if alias in data), None)
        texts, answer = _relabel_mapping(options, data.get(answer_key))
        return {**data, key: texts, **({answer_key: answer} if answer_key else {})}

    @field_validator("options", mode="before")
    @classmethod
    def _options_as_list(cls, value: Any) -> Any:
        """Options without their letter labels (`dialogues.py` renders the letters). A label is only removed where it
        is one: the key's own letter in {"A": "A. one"} (see `_relabel_mapping`), or the A, B, C, D sequence carried
        by all options of a list. "C. elegans" in ["C. elegans", "E. coli", "S. aureus", "B. subtilis"] is a name,
        not option C."""
        if isinstance(value, list):
            labels = [_LETTER_PREFIX.fullmatch(str(option).strip()) for option in value]
            sequence = [label.group(1).upper() if label else None for label in labels]
            if sequence == list(LETTERS[: len(value)]):
                return [label.group(2).strip() for label in labels]
        return value

    @field_validator("options")
    @classmethod
    def _four_distinct_options(cls, value: list[str]) -> list[str]:
        for option in value:
            _no_placeholder(option, "option")
        if len(value) != len(LETTERS) or any(not option for option in value):
            raise ValueError(f"expected {len(LETTERS)} non-empty options, got {len(value)}")
        if len({option_key(option) for option in value}) != len(value):
            raise ValueError("options are not distinct")
        return value

    @model_validator(mode="after")
    def _answer_as_letter(self) -> MCTurn:
        """The answer as a bare letter. It may be a letter ("B", "(b)", "B."), a letter with its option's text
        ("C. Green"), or an option's text ("Green", "(6,2)" for "(6, 2)"); it must name exactly one option."""
        answer = self.answer.strip()
        key = option_key(answer)
        named = {letter for letter, option in zip(LETTERS, self.options, strict=True) if option_key(option) == key}
        if bare := _BARE_LETTER.fullmatch(answer):
            named.add(bare.group(1).upper())
        elif (label := _LETTER_PREFIX.fullmatch(answer)) and label.group(1).upper() in LETTERS:
            letter = label.group(1).upper()
            if option_key(label.group(2)) == option_key(self.options[LETTERS.index(letter)]):
                named.add(letter)
        if not named:
            raise PydanticCustomError(
                "mc_answer_unmapped", "answer {answer} names none of the options {options}",
                {"answer": repr(answer), "options": repr(self.options)},
            )  # fmt: skip
        if len(named) > 1:
            raise PydanticCustomError(
                "mc_answer_ambiguous", "answer {answer} names options {letters}",
                {"answer": repr(answer), "letters": " and ".join(sorted(named))},
            )  # fmt: skip
        self.answer = named.pop()
        return self


TURN_MODELS: dict[str, type[_Turn]] = {"mc": MCTurn, "qa": QATurn, "reasoning": QATurn}
_LIST_KEYS = ("questions", "conversations", "pairs", "qa", "qa_pairs", "dialogue", "items")


def _turn_list(data: Any) -> tuple[list, bool]:
    """(the list of turns, whether it came in the expected schema): a top-level list, a known key, or the only list
    value of an object are the schema; a lone turn object ({"question": ..., "answer": ...}) is accepted as one
    turn, but it is what an example of one item looks like, hence not the schema."""
    if isinstance(data, list):
        return data, True
    if isinstance(data, dict):
        for key in _LIST_KEYS:
            if isinstance(data.get(key), list):
                return data[key], True
        lists = [value for value in data.values() if isinstance(value, list)]
        if len(lists) == 1:
            return lists[0], True
        if "question" in {str(key).lower() for key in data}:  # a single turn instead of a list
            return [data], False
    raise DialogueParseError("schema_mismatch", f"expected a list of turns, got keys {_keys(data)}")


def _keys(data: Any) -> list[str] | str:
    return sorted(data) if isinstance(data, dict) else type(data).__name__


def _turn_reason(error: ValidationError) -> str:
    """The drop reason of one invalid turn: its most specific error."""
    kinds = {detail["type"] for detail in error.errors()}
    # pydantic reports the answer check only when every field is valid, so at most one of these is present.
    specific = {"placeholder": "placeholder_turns", "mc_answer_ambiguous": "mc_answer_ambiguous",
                "mc_answer_unmapped": "mc_answer_unmapped",
                "mc_options_unlabelled": "mc_options_unlabelled"}  # fmt: skip
    return next((reason for kind, reason in specific.items() if kind in kinds), "schema_mismatch")


@dataclass
class _Candidate:
    """The valid turns of one JSON value of a reply, with what ranks it as the reply's payload."""

    turns: list[_Turn]
    failures: list[tuple[str, str]]  # (reason, message) of the turns that did not validate
    in_schema: bool
    part: int  # 0: the reply outside reasoning blocks; 1, 2, ...: inside them
    position: int

    def rank(self) -> tuple:
        """Higher is more likely the payload: the reply's own text, the expected schema, more turns, later."""
        return (-self.part, self.in_schema, len(self.turns), self.position)


def _valid_turns(task: str, data: Any, part: int, position: int) -> _Candidate:
    """The valid turns of one JSON value; invalid single turns are skipped, so one bad question does not discard
    seven good ones. Raises `DialogueParseError` when no turn is valid."""
    model = TURN_MODELS[task]
    raw_turns, in_schema = _turn_list(data)
    turns, failures = [], []
    for index, raw in enumerate(raw_turns):
        try:
            turns.append(model.model_validate(raw))
        except ValidationError as error:
            failures.append((_turn_reason(error), f"turn {index}: {_short(error)}"))
    if not turns:
        detail = "; ".join(message for _, message in failures[:3]) or "the list of turns is empty"
        reasons = {reason for reason, _ in failures}
        # Every turn failing for the same specific reason gets that reason; a mix is a schema mismatch.
        reason = reasons.pop() if len(reasons) == 1 else "schema_mismatch"
        raise DialogueParseError(reason, f"no valid {task} turn: {detail}")
    return _Candidate(turns, failures, in_schema, part, position)


def parse_dialogue(task: str, text: str | None, min_turns: int, max_turns: int) -> list[_Turn]:
    """Validated turns of a `task` reply; more than `max_turns` turns are cut to `max_turns`, fewer valid turns
    than `min_turns` raise `DialogueParseError` (too_few_turns).

    The payload is chosen among the reply's JSON values that hold at least one valid turn, before `min_turns` is
    applied (so `min_turns` never decides which value is the payload), by these keys in order:
    1. the reply's own text over its reasoning blocks (an example quoted while thinking is not the answer);
    2. the expected schema, a list of turns or an object holding one, over a lone turn object (what an example of
       one item in the prose looks like: "Each item looks like this: {"question": ..., "answer": ...}");
    3. more valid turns;
    4. the later one (a reply shows its format before it answers).
    When no value holds a valid turn, the reason of the one that got furthest is raised (a wrong MC answer or
    unlabelled options over placeholders over a schema mismatch; the earlier value on a tie)."""
    best: DialogueParseError | None = None
    candidates = []
    for value, part, position in json_candidates(text):
        try:
            candidates.append(_valid_turns(task, value, part, position))
        except DialogueParseError as error:
            if best is None or _REASON_RANK[error.reason] > _REASON_RANK[best.reason]:
                best = error
    if not candidates:
        raise best
    payload = max(candidates, key=_Candidate.rank)
    if len(payload.turns) < min_turns:
        detail = "; ".join(message for _, message in payload.failures[:3])
        raise DialogueParseError(
            "too_few_turns", f"{len(payload.turns)} valid {task} turn(s), need at least {min_turns}; {detail}"
        )
    return payload.turns[:max_turns]


def _short(error: Exception) -> str:
    if isinstance(error, ValidationError):
        return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'turn'}: {e['msg']}" for e in error.errors()[:2])
    return str(error)
