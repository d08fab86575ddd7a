"""Questions about what an image shows, built from the titles of real pairs: for training dialogues and evaluation.

Two question types, in the wording of LLaVA-1.5's evaluation prompts (the same suffixes as `recipes/*/evaluate.yaml`):

- `mc`: 4-way multiple choice "what is shown", distractors drawn from other titles of the same source (an emoji is
  never offered against clip-art titles, so the style of a drawing does not give the answer away);
- `yes_no`: POPE-style presence questions, balanced: half ask about the shown title, half about a distractor.

Everything is seeded; the same seed gives the same questions, letters and yes/no balance.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import asdict, dataclass, replace

from unicorn_hf.evaluation.answers import option_letters
from unicorn_hf.lit.pairs import Pair


@dataclass(frozen=True)
class QuestionTemplates:
    """Prompt wording; from the experiment YAML (`mc_question`, `mc_suffix`, `yes_no_question`, `yes_no_suffix`)."""

    mc_question: str  # e.g. "What is shown in the image?"
    mc_suffix: str  # LLaVA-1.5: "Answer with the option's letter from the given choices directly."
    yes_no_question: str  # e.g. "Is there {title} in the image?"
    yes_no_suffix: str  # LLaVA-1.5: "Answer the question using a single word or phrase."


@dataclass(frozen=True)
class Question:
    """One question about one pair's image. `answer` is a letter (`mc`) or `yes`/`no` (`yes_no`)."""

    pair_id: str
    kind: str  # "mc" | "yes_no"
    text: str  # the user turn without the image placeholder
    answer: str
    options: tuple[str, ...] = ()  # option texts in letter order (mc only)
    subject: str = ""  # the title asked about (yes_no only)

    def to_dict(self) -> dict:
        return asdict(self)


def _distractors(pair: Pair, by_source: dict[str, list[Pair]], count: int, rng: random.Random) -> list[str]:
    """`count` titles of other pairs, from the pair's own source while it has enough (else from every source: only
    tiny smoke runs get there). Raises `ValueError` when all sources together hold too few other titles."""
    same = sorted({other.title for other in by_source[pair.source]} - {pair.title})
    if len(same) >= count:
        return rng.sample(same, count)
    every = sorted({other.title for group in by_source.values() for other in group} - {pair.title})
    if len(every) < count:
        raise ValueError(f"{len(every)} other titles in all sources; {count} distractors needed for {pair.id}")
    return rng.sample(every, count)


def mc_question(
    pair: Pair, by_source: dict[str, list[Pair]], num_options: int, templates: QuestionTemplates, rng: random.Random
) -> Question:
    """A `num_options`-way "what is shown" question; the right title sits at a uniformly drawn letter."""
    options = _distractors(pair, by_source, num_options - 1, rng)
    position = rng.randrange(num_options)
    options.insert(position, pair.title)
    letters = option_letters(num_options)
    lines = [templates.mc_question, *(f"{letter}. {option}" for letter, option in zip(letters, options, strict=True))]
    text = "\n".join([*lines, templates.mc_suffix])
    return Question(pair.id, "mc", text, letters[position], tuple(options))


def yes_no_question(
    pair: Pair, by_source: dict[str, list[Pair]], answer_yes: bool, templates: QuestionTemplates, rng: random.Random
) -> Question:
    """ "Is there <title> in the image?" about the pair's own title (yes) or a distractor's (no)."""
    title = pair.title if answer_yes else _distractors(pair, by_source, 1, rng)[0]
    text = f"{templates.yes_no_question.format(title=title)}\n{templates.yes_no_suffix}"
    return Question(pair.id, "yes_no", text, "yes" if answer_yes else "no", subject=title)


def title_in_prompt_questions(questions: list[Question], title_of: dict[str, str], template: str) -> list[Question]:
    """`questions` with their pair's title written as words before each question (`template` with a `{title}` slot,
    e.g. "The image shows {title}."): the content handed to the LM as text, for a ceiling on what it can answer.

    Raises `KeyError` naming a question whose pair has no title in `title_of`."""
    missing = sorted({question.pair_id for question in questions} - set(title_of))
    if missing:
        raise KeyError(f"no title for pair(s) {missing[:5]}")
    return [
        replace(question, text=f"{template.format(title=title_of[question.pair_id])}\n{question.text}")
        for question in questions
    ]


def group_by_source(pairs: list[Pair]) -> dict[str, list[Pair]]:
    groups: dict[str, list[Pair]] = defaultdict(list)
    for pair in pairs:
        groups[pair.source].append(pair)
    return groups


def evaluation_questions(
    pairs: list[Pair], num_options: int, templates: QuestionTemplates, seed: int
) -> list[Question]:
    """One `mc` and one `yes_no` question per pair; yes/no answers alternate in a shuffled order (balanced)."""
    rng = random.Random(seed)
    by_source = group_by_source(pairs)
    answers_yes = [index % 2 == 0 for index in range(len(pairs))]
    rng.shuffle(answers_yes)
    questions = [mc_question(pair, by_source, num_options, templates, rng) for pair in pairs]
    questions += [
        yes_no_question(pair, by_source, yes, templates, rng) for pair, yes in zip(pairs, answers_yes, strict=True)
    ]
    return questions


def one_question_dialogue(question: Question, image_token: str) -> list[dict]:
    """`question` as a one-turn chat in `messages` form: the user turn opens with the image placeholder (the data
    contract), the reply is the bare letter or "Yes"/"No" (one token each in SmolLM2's vocabulary), as the
    evaluation prompts ask."""
    answer = question.answer if question.kind == "mc" else question.answer.capitalize()
    return [
        {"role": "user", "content": f"{image_token}\n{question.text}"},
        {"role": "assistant", "content": answer},
    ]


def training_dialogues(
    pair: Pair,
    by_source: dict[str, list[Pair]],
    num_options: int,
    templates: QuestionTemplates,
    image_token: str,
    rng: random.Random,
) -> list[tuple[str, list[dict]]]:
    """Two one-question chats about one pair, as (task, messages): an `mc` one, then a `yes_no` one (yes or no at
    random) whose task is `qa` in the instructions contract (`mc|qa|reasoning`).

    Why one question per chat: asked after the mc turn in one chat, the yes/no answer follows from the text. A "yes"
    asks about the title the previous reply just picked and a "no" about one the options never listed, so SFT
    learned presence without the image (the concept-title dialogues of 2026-12: all 3,967 "Yes" turns asked about
    an option, 4,072 of the 4,075 "No" turns about a title outside them), and answered "no" to every held-out
    image. Asked in either order the first answer gives the second away; asked alone, only the image answers.
    """
    mc = mc_question(pair, by_source, num_options, templates, rng)
    yes_no = yes_no_question(pair, by_source, rng.random() < 0.5, templates, rng)
    return [("mc", one_question_dialogue(mc, image_token)), ("qa", one_question_dialogue(yes_no, image_token))]
