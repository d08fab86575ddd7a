"""Robust JSON extraction from LLM replies: every JSON value a reply holds, recovered where it can be.

LLMs wrap JSON in code fences, add a sentence before or after it, think aloud in a `<think>` block first, use Python
literals (single quotes, `True`), leave trailing commas or raw newlines inside strings, or stop mid-object.
`json_values` recovers every JSON value that is recoverable (outside reasoning blocks first); `extract_json` takes
the first. A reply with no usable JSON raises `DialogueParseError`, whose `reason` is a drop reason for the
`DropLog`: `empty_generation`, `no_json`, `truncated_json` or `invalid_json`.
"""

from __future__ import annotations

import ast
import json
import re
from typing import Any


_FENCE = re.compile(r"```(?:json|JSON|javascript|python)?\s*(.*?)(?:```|$)", re.DOTALL)
_TRAILING_COMMA = re.compile(r",\s*([}\]])")
_SMART_QUOTES = str.maketrans({"\u201c": '"', "\u201d": '"', "\u2018": "'", "\u2019": "'"})
# Reasoning blocks of thinking models (DeepSeek-R1, Qwen3 write <think>; others <thinking>/<reasoning>). A chat
# template that prefills "<think>" leaves only the closing tag in the reply; a reply cut off while thinking only
# the opening one.
_REASONING_TAGS = r"think|thinking|reasoning|reflection"
_REASONING_BLOCK = re.compile(rf"<({_REASONING_TAGS})>(.*?)</\1>", re.DOTALL | re.IGNORECASE)
_REASONING_CLOSE = re.compile(rf"</(?:{_REASONING_TAGS})>", re.IGNORECASE)
_REASONING_OPEN = re.compile(rf"<(?:{_REASONING_TAGS})>", re.IGNORECASE)


class DialogueParseError(ValueError):
    """A reply that cannot become a dialogue; `reason` is the drop reason, the message says why."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


def _balanced_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of the top-level `{...}` / `[...]` spans of `text`, tracking strings so braces inside them do not
    count."""
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
                spans.append((start, index + 1))
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
                closed = text[start : end + 1] + "".join(reversed(stack))
                try:
                    return json.loads(_TRAILING_COMMA.sub(r"\1", closed), strict=False)
                except json.JSONDecodeError:
                    continue
    return None


def _loads_lenient(candidate: str) -> Any:
    """json.loads, then the same after light repairs, then as a Python literal (single quotes, True/None).

    `strict=False` lets raw control characters stand inside strings: a reasoning answer written over two lines
    ("Step 1: ...<newline>Step 2: ...") is what the model meant, and the newline is kept."""
    attempts = [candidate, _TRAILING_COMMA.sub(r"\1", candidate.translate(_SMART_QUOTES))]
    for attempt in attempts:
        try:
            return json.loads(attempt, strict=False)
        except json.JSONDecodeError:
            pass
    try:
        value = ast.literal_eval(attempts[-1])
    except (ValueError, SyntaxError, MemoryError, RecursionError) as error:
        raise DialogueParseError("invalid_json", f"not valid JSON: {error}") from error
    if not isinstance(value, (dict, list)):
        raise DialogueParseError("invalid_json", f"expected a JSON object or list, got {type(value).__name__}")
    return value


def split_reasoning(text: str) -> tuple[str, list[str]]:
    """(the reply without its reasoning blocks, the blocks' contents)."""
    reasoning: list[str] = []

    def keep(match: re.Match) -> str:
        reasoning.append(match.group(2))
        return " "

    answer = _REASONING_BLOCK.sub(keep, text)
    if closers := list(_REASONING_CLOSE.finditer(answer)):  # the opening tag was in the prompt (prefill)
        reasoning.append(answer[: closers[-1].start()])
        answer = answer[closers[-1].end() :]
    if opener := _REASONING_OPEN.search(answer):  # cut off while thinking
        reasoning.append(answer[opener.end() :])
        answer = answer[: opener.start()]
    return answer, reasoning


def json_candidates(text: str | None) -> list[tuple[Any, int, int]]:
    """(value, part, position) of every JSON object/list recoverable from an LLM reply. `part` is 0 for the reply
    outside reasoning blocks and 1, 2, ... for the blocks; `position` is where the value starts in its part. Within
    a part: code fences, then top-level spans in order, then a salvaged cut-off tail. Raises `DialogueParseError`
    (empty_generation, no_json, truncated_json, invalid_json) when there is none."""
    if text is None or not text.strip():
        raise DialogueParseError("empty_generation", "the LLM returned nothing")
    answer, reasoning = split_reasoning(text)
    values, seen, error, any_span = [], set(), None, False
    for part_index, part in enumerate([answer, *reasoning]):
        fenced = [(match.start(1), match.group(1)) for match in _FENCE.finditer(part) if match.group(1).strip()]
        tail_start = 0
        for offset, block in [*fenced, (0, part)]:
            spans = _balanced_spans(block)
            for start, end in spans:
                candidate = block[start:end]
                if candidate in seen:
                    continue
                seen.add(candidate)
                any_span = True
                try:
                    values.append((_loads_lenient(candidate), part_index, offset + start))
                except DialogueParseError as caught:
                    error = error or caught
            if block is part and spans:
                tail_start = spans[-1][1]
        # What follows the last complete span may be the payload, cut off by max_new_tokens.
        if (salvaged := _close_truncated(part[tail_start:])) is not None:
            values.append((salvaged, part_index, len(part)))
    if values:
        return values
    if error is not None:
        raise error
    if any_span or "{" in text or "[" in text:
        raise DialogueParseError("truncated_json", "the JSON in the reply is not closed (cut off?)")
    raise DialogueParseError("no_json", "the reply contains no JSON object")


def json_values(text: str | None) -> list[Any]:
    """Every JSON object/list recoverable from an LLM reply: outside reasoning blocks before inside them; within a
    part, code fences, then top-level spans in order, then a salvaged cut-off tail. Raises `DialogueParseError`
    (empty_generation, no_json, truncated_json, invalid_json) when there is none."""
    return [value for value, _, _ in json_candidates(text)]


def extract_json(text: str | None) -> Any:
    """The most likely JSON payload of an LLM reply: the first of `json_values`."""
    return json_values(text)[0]
