"""Validated dialogue turns -> chat `messages`, and the caption -> task assignment of stage 2.

Messages follow the data contract: `[{"role": "user"|"assistant", "content": str}]`, the first user turn starts
with the image token (exactly one in the whole dialogue), MC options are rendered as `A. ...` lines and the MC
answer is the bare letter.
"""

from __future__ import annotations

import hashlib

from unicorn_hf.synthesis.config import TaskConfig
from unicorn_hf.synthesis.parsing import LETTERS, MCTurn, QATurn


def _clean(text: str, image_token: str) -> str:
    """A generated text must not smuggle in another image placeholder."""
    return " ".join(text.replace(image_token, " ").split()) if image_token in text else text.strip()


def to_messages(
    task: str, turns: list[MCTurn] | list[QATurn], image_token: str, mc_answer_hint: str | None = None
) -> list[dict[str, str]]:
    messages = []
    for index, turn in enumerate(turns):
        question = _clean(turn.question, image_token)
        if task == "mc":
            lettered = zip(LETTERS, turn.options, strict=True)
            options = "\n".join(f"{letter}. {_clean(option, image_token)}" for letter, option in lettered)
            question = f"{question}\n{options}" + (f"\n{mc_answer_hint}" if mc_answer_hint else "")
            answer = turn.answer  # already a bare letter (parse_dialogue)
        else:
            answer = _clean(turn.answer, image_token)
        if index == 0:
            question = f"{image_token}\n{question}"
        messages += [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
    return messages


def check_messages(messages: list[dict[str, str]], image_token: str) -> None:
    """Raise if `messages` breaks the data contract (used by tests and as a last guard before writing)."""
    if not messages or messages[0]["role"] != "user" or not messages[0]["content"].startswith(image_token):
        raise ValueError(f"the first message must be a user turn starting with {image_token!r}")
    if sum(message["content"].count(image_token) for message in messages) != 1:
        raise ValueError(f"a dialogue must hold exactly one {image_token!r}")
    roles = [message["role"] for message in messages]
    if roles != ["user", "assistant"] * (len(messages) // 2) or len(messages) % 2:
        raise ValueError(f"roles must alternate user/assistant, got {roles}")


def _unit_interval(key: str) -> float:
    return int(hashlib.sha1(key.encode()).hexdigest()[:15], 16) / 16**15


def assign_tasks(
    ids: list[str], tasks: list[TaskConfig], num_dialogues: int | None, seed: int | None
) -> dict[str, str]:
    """Choose `num_dialogues` captions (all when None) and split them over the tasks in proportion to the weights.

    Exact counts by largest remainder (171/199/100 of 471 gives 171/199/100 exactly); which caption gets which task
    depends only on its id and `seed`, so the assignment is stable when captions are added or reordered.
    """
    order = sorted(ids, key=lambda row_id: _unit_interval(f"{seed}:{row_id}"))
    total = len(order) if num_dialogues is None else min(num_dialogues, len(order))
    weight_sum = sum(task.weight for task in tasks)
    quotas = [total * task.weight / weight_sum for task in tasks]
    counts = [int(quota) for quota in quotas]
    by_remainder = sorted(range(len(tasks)), key=lambda i: quotas[i] - counts[i], reverse=True)
    for i in by_remainder[: total - sum(counts)]:
        counts[i] += 1
    assignment, start = {}, 0
    for task, count in zip(tasks, counts, strict=True):
        assignment.update(dict.fromkeys(order[start : start + count], task.name))
        start += count
    return assignment
