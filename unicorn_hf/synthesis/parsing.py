"""Robust JSON extraction from LLM replies and pydantic validation of the stage-2 dialogues.

LLMs wrap JSON in code fences, add a sentence before or after it, use Python literals (single quotes, `True`),
leave trailing commas, or stop mid-object. `extract_json` recovers what is recoverable; `parse_dialogue` validates
the structure per task and raises `DialogueParseError` whose `reason` is a short drop reason for the `DropLog`.
"""

from __future__ import annotations

import ast
import json
import re
from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, field_validator


LETTERS = "ABCD"
_FENCE = re.compile(r"```(?:json|JSON|javascript|python)?\s*(.*?)(?:```|$)", re.DOTALL)
_TRAILING_COMMA = re.compile(r",\s*([}\]])")
_SMART_QUOTES = str.maketrans({"\u201c": '"', "\u201d": '"', "\u2018": "'", "\u2019": "'"})


class DialogueParseError(ValueError):
    """A reply that cannot become a dialogue; `reason` is the drop reason, the message says why."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


def _balanced_spans(text: str) -> list[str]:
    """Top-level `{...}` / `[...]` spans of `text`, tracking strings so braces inside them do not count."""
    spans, stack, start, quote, escaped = [], [], None, None, False
    for index, char in enumerate(text):
        if quote:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == quote:
                quote = None
            continue
        if char in "\"'" and stack:
            quote = char
        elif char in "{[":
            if not stack:
                start = index
            stack.append("}" if char == "{" else "]")
        elif char in "}]" and stack:
            if char != stack[-1]:  # mismatched closer: give up on this span
                stack, start = [], None
                continue
            stack.pop()
            if not stack:
                spans.append(text[start : index + 1])
    return spans


def _close_truncated(text: str, max_attempts: int = 64) -> Any:
    """Salvage a reply cut off mid-JSON: cut it after one of its last closing brackets and append the closers that
    are still open, e.g. 5 complete questions of a list cut in the 6th. None when no cut parses."""
    start = min((i for i in (text.find("{"), text.find("[")) if i >= 0), default=-1)
    if start < 0:
        return None
    ends = [i for i in range(len(text) - 1, start, -1) if text[i] in "}]"][:max_attempts]
    for end in ends:
        stack, quote, escaped = [], None, False
        for char in text[start : end + 1]:
            if quote:
                escaped, quote = (False, quote) if escaped else (char == "\\", None if char == quote else quote)
            elif char == '"':
                quote = char
            elif char in "{[":
                stack.append("}" if char == "{" else "]")
            elif char in "}]" and (not stack or stack.pop() != char):
                break
        else:
            if quote is None and stack:
                try:
                    return json.loads(_TRAILING_COMMA.sub(r"\1", text[start : end + 1] + "".join(reversed(stack))))
                except json.JSONDecodeError:
                    continue
    return None


def _loads_lenient(candidate: str) -> Any:
    """json.loads, then the same after light repairs, then as a Python literal (single quotes, True/None)."""
    attempts = [candidate, _TRAILING_COMMA.sub(r"\1", candidate.translate(_SMART_QUOTES))]
    for attempt in attempts:
        try:
            return json.loads(attempt)
        except json.JSONDecodeError:
            pass
    try:
        value = ast.literal_eval(attempts[-1])
    except (ValueError, SyntaxError, MemoryError, RecursionError) as error:
        raise DialogueParseError("invalid_json", f"not valid JSON: {error}") from error
    if not isinstance(value, (dict, list)):
        raise DialogueParseError("invalid_json", f"expected a JSON object or list, got {type(value).__name__}")
    return value


def extract_json(text: str | None) -> Any:
    """The first JSON object/list in an LLM reply (code fences, surrounding prose and Python literals tolerated)."""
    if text is None or not text.strip():
        raise DialogueParseError("empty_generation", "the LLM returned nothing")
    fenced = [match.group(1) for match in _FENCE.finditer(text) if match.group(1).strip()]
    candidates = [span for block in [*fenced, text] for span in _balanced_spans(block)]
    if not candidates:
        if (salvaged := _close_truncated(text)) is not None:
            return salvaged
        if "{" in text or "[" in text:
            raise DialogueParseError("truncated_json", "the JSON in the reply is not closed (cut off?)")
        raise DialogueParseError("no_json", "the reply contains no JSON object")
    error: DialogueParseError | None = None
    for candidate in candidates:
        try:
            return _loads_lenient(candidate)
        except DialogueParseError as caught:
            error = error or caught
    raise error


class _Turn(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    question: str = Field(min_length=1, validation_alias=AliasChoices("question", "Question", "q", "user", "human"))


class QATurn(_Turn):
    answer: str = Field(
        min_length=1, validation_alias=AliasChoices("answer", "Answer", "a", "assistant", "gpt", "response")
    )


class MCTurn(_Turn):
    options: list[str] = Field(validation_alias=AliasChoices("options", "Options", "choices", "Choices"))
    answer: str = Field(validation_alias=AliasChoices("answer", "Answer", "correct", "correct_answer"))

    @field_validator("options", mode="before")
    @classmethod
    def _options_as_list(cls, value: Any) -> Any:
        if isinstance(value, dict):  # {"A": "...", "B": "..."}
            value = [value[key] for key in sorted(value)]
        if isinstance(value, list):  # "A. red" -> "red": the letters are rendered by `dialogues.py`
            value = [re.sub(r"^\s*\(?[A-Da-d][.):]\s+", "", str(option)).strip() for option in value]
        return value

    @field_validator("options")
    @classmethod
    def _four_distinct_options(cls, value: list[str]) -> list[str]:
        if len(value) != len(LETTERS) or any(not option for option in value):
            raise ValueError(f"expected {len(LETTERS)} non-empty options, got {len(value)}")
        if len({option.lower() for option in value}) != len(value):
            raise ValueError("options are not distinct")
        return value

    def answer_letter(self) -> str:
        """The answer as a bare letter; accepts "B", "(b)", "B. blue", or the option text itself."""
        answer = self.answer.strip()
        if match := re.fullmatch(r"\(?([A-Da-d])\)?(?:[.):]\s*.*)?", answer, flags=re.DOTALL):
            return match.group(1).upper()
        lowered = [option.lower() for option in self.options]
        if answer.lower() in lowered:
            return LETTERS[lowered.index(answer.lower())]
        raise ValueError(f"answer {answer!r} is neither a letter A-D nor one of the options")


TURN_MODELS: dict[str, type[_Turn]] = {"mc": MCTurn, "qa": QATurn, "reasoning": QATurn}
_LIST_KEYS = ("questions", "conversations", "pairs", "qa", "qa_pairs", "dialogue", "items")


def _turn_list(data: Any) -> list:
    """The list of turns: a top-level list, a known key, or the only list value of an object."""
    if isinstance(data, list):
        return data
    if isinstance(data, dict):
        for key in _LIST_KEYS:
            if isinstance(data.get(key), list):
                return data[key]
        lists = [value for value in data.values() if isinstance(value, list)]
        if len(lists) == 1:
            return lists[0]
        if "question" in {str(key).lower() for key in data}:  # a single turn instead of a list
            return [data]
    raise DialogueParseError("schema_mismatch", f"expected a list of turns, got keys {_keys(data)}")


def _keys(data: Any) -> list[str] | str:
    return sorted(data) if isinstance(data, dict) else type(data).__name__


def parse_dialogue(task: str, text: str | None, min_turns: int, max_turns: int) -> list[_Turn]:
    """Validated turns of a `task` reply; more than `max_turns` turns are cut to `max_turns`, fewer valid turns
    than `min_turns` raise `DialogueParseError`. Invalid single turns are skipped, so one bad question does not
    discard seven good ones."""
    model = TURN_MODELS[task]
    raw_turns = _turn_list(extract_json(text))
    turns, errors = [], []
    for index, raw in enumerate(raw_turns):
        try:
            turn = model.model_validate(raw)
            if isinstance(turn, MCTurn):
                turn.answer = turn.answer_letter()
            turns.append(turn)
        except (ValidationError, ValueError) as error:
            errors.append(f"turn {index}: {_short(error)}")
    if not turns:
        detail = "; ".join(errors[:3]) or "the list of turns is empty"
        raise DialogueParseError("schema_mismatch", f"no valid {task} turn: {detail}")
    if len(turns) < min_turns:
        raise DialogueParseError(
            "too_few_turns", f"{len(turns)} valid {task} turn(s), need at least {min_turns}; {'; '.join(errors[:3])}"
        )
    return turns[:max_turns]


def _short(error: Exception) -> str:
    if isinstance(error, ValidationError):
        return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'turn'}: {e['msg']}" for e in error.errors()[:2])
    return str(error)
