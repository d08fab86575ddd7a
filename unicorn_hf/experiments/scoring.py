"""Score a model (or the encoder alone) on the experiment's questions, two ways for the model.

- likelihood: the logits of the first answer token, compared over the closed answer set ("A".."D", "Yes"/"No").
  No generation noise, and a model that never learned the format still gets a fair score.
- generation: greedy decoding, then the project's answer extraction (`unicorn_hf.evaluation.answers`), which is
  what a user of the pipeline sees; unparsed replies count as wrong.

The encoder's own zero-shot accuracy is the ceiling of what any VLM on its embeddings can read from the image.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np
import torch

from unicorn_hf.evaluation.answers import extract_choice, extract_yes_no, option_letters
from unicorn_hf.evaluation.inference import UnicornImageQA
from unicorn_hf.experiments.questions import Question
from unicorn_hf.modeling import UnicornForConditionalGeneration, UnicornProcessor
from unicorn_hf.modeling.modality_transfer import TransferSettings


def single_token_id(tokenizer, text: str) -> int:
    """The id of `text` as one token; raises `ValueError` when the tokenizer splits it (no first-token scoring)."""
    ids = tokenizer.encode(text, add_special_tokens=False)
    if len(ids) != 1:
        raise ValueError(f"{text!r} is {len(ids)} tokens {ids} for this tokenizer; first-token scoring needs one")
    return ids[0]


def likelihood_answers(first_logits: torch.Tensor, questions: Sequence[Question], tokenizer) -> list[str]:
    """Per question, the candidate answer whose first token has the highest logit. first_logits: [N, V]."""
    answers = []
    for logits, question in zip(first_logits, questions, strict=True):
        if question.kind == "mc":
            candidates = option_letters(len(question.options))
            token_ids = [single_token_id(tokenizer, letter) for letter in candidates]
        else:
            candidates = ["yes", "no"]
            token_ids = [single_token_id(tokenizer, word.capitalize()) for word in candidates]
        answers.append(candidates[int(logits[token_ids].argmax())])
    return answers


def generation_answers(replies: Sequence[str], questions: Sequence[Question]) -> list[str | None]:
    """The extracted answer of each reply (None: unparsed)."""
    return [
        extract_choice(reply, question.options) if question.kind == "mc" else extract_yes_no(reply)
        for reply, question in zip(replies, questions, strict=True)
    ]


def correctness(answers: Sequence[str | None], questions: Sequence[Question]) -> np.ndarray:
    """0/1 per question [N]; None (unparsed) is wrong."""
    return np.array([answer == question.answer for answer, question in zip(answers, questions, strict=True)], float)


def most_frequent_answer(questions: Sequence[Question]) -> np.ndarray:
    """0/1 per question [N] for a constant answer: per question kind, the most frequent right answer. What a model
    that ignores the image can reach from answer priors alone (a random letter gets 25%, this one more)."""
    best = {
        kind: Counter(q.answer for q in questions if q.kind == kind).most_common(1)[0][0]
        for kind in {q.kind for q in questions}
    }
    return np.array([question.answer == best[question.kind] for question in questions], float)


def zero_shot_answers(
    image_embeds: torch.Tensor, questions: Sequence[Question], encode_text, prompt_for_title
) -> list[str]:
    """The encoder's own answers: cosine of the image [N, D] with each candidate's text embedding.

    mc: the option whose prompt (`prompt_for_title(pair_id, title)`) is most similar. yes/no has no threshold of its
    own, so "yes" where the similarity to the asked title is above the median over all yes/no questions: the
    questions are balanced by construction, so the median is the prior-matched cut, chosen without labels.
    """
    answers: list[str | None] = [None] * len(questions)
    mc_rows = [i for i, q in enumerate(questions) if q.kind == "mc"]
    for row in mc_rows:
        question = questions[row]
        options = encode_text([prompt_for_title(question.pair_id, option) for option in question.options])  # [K, D]
        answers[row] = option_letters(len(question.options))[int((options @ image_embeds[row]).argmax())]
    yes_no_rows = [i for i, q in enumerate(questions) if q.kind == "yes_no"]
    if yes_no_rows:
        asked = encode_text([prompt_for_title(questions[row].pair_id, questions[row].subject) for row in yes_no_rows])
        similarity = (asked * image_embeds[yes_no_rows]).sum(-1)  # [M]
        cut = similarity.median()
        for row, value in zip(yes_no_rows, similarity, strict=True):
            answers[row] = "yes" if value > cut else "no"
    return answers


def evaluation_embeds(qa, mean: str, inputs: str, raw: torch.Tensor, seed: int) -> torch.Tensor:
    """What the model of `qa` (a `UnicornImageQA`) receives for evaluation images raw [N, D]: shifted as `mean` says
    (`UnicornImageQA.resolve_mean`: eval, image, text or none), or a blind control.

    inputs: `images`, `zero` (no image at all) or `shuffled` (another question's image, a seeded permutation).
    Returns [N, D] float32.
    """
    if inputs == "zero":
        return torch.zeros_like(raw, dtype=torch.float32)
    shifted = qa.transfer(raw, qa.resolve_mean(mean, raw))
    if inputs == "shuffled":
        shifted = shifted[torch.randperm(len(raw), generator=torch.Generator().manual_seed(seed))]
    elif inputs != "images":
        raise ValueError(f"inputs must be images, zero or shuffled, got {inputs!r}")
    return shifted


def load_image_qa(model_dir: str, device: str = "cpu", transfer_overrides: dict | None = None):
    """A `UnicornImageQA` of the checkpoint in float32 on `device`, fed precomputed embeddings (no encoder).
    `transfer_overrides` changes the checkpoint's modality-transfer settings in memory only (an inference-only arm,
    e.g. `project_images_onto_memory`); raises `ValueError` naming an unknown or bad field."""
    model = UnicornForConditionalGeneration.from_pretrained(model_dir, dtype=torch.float32).to(device).eval()
    if transfer_overrides:
        merged = {**model.config.modality_transfer, **transfer_overrides}
        model.config.modality_transfer = TransferSettings.from_dict(merged).to_dict()  # raises naming a bad field
    return UnicornImageQA(model, UnicornProcessor.from_pretrained(model_dir), encoder=None)


def score_questions(
    qa, questions: Sequence[Question], embeds: torch.Tensor, batch_size: int, max_new_tokens: int
) -> dict:
    """Ask every question with its input embeds [Q, D] (already in the model's training space: no transfer here).

    Returns per-question 0/1 correctness by `likelihood` (first answer token over the closed set) and by
    `generation` (greedy reply, extracted), the answers chosen by the first token (`likelihood_answers`), the
    `unparsed` count and a few `replies_sample`.
    """
    replies, first_logits = qa.generate_with_first_logits(
        embeds, [q.text for q in questions], batch_size=batch_size, max_new_tokens=max_new_tokens, do_sample=False
    )
    extracted = generation_answers(replies, questions)
    chosen = likelihood_answers(first_logits, questions, qa.processor.tokenizer)
    return {
        "likelihood": correctness(chosen, questions).tolist(),
        "generation": correctness(extracted, questions).tolist(),
        "likelihood_answers": chosen,
        "unparsed": sum(answer is None for answer in extracted),
        "replies_sample": list(replies[:4]),
    }


def score_modes(
    qa, questions: Sequence[Question], raw: torch.Tensor, modes: Sequence, batch_size: int, max_new_tokens: int,
    seed: int,
) -> dict:  # fmt: skip
    """Per mode (objects with `name`, `mean`, `inputs`): `score_questions` on the inputs `evaluation_embeds` makes
    of raw [Q, D] raw image embeddings (the paired encoder's, one per question)."""
    return {
        mode.name: score_questions(
            qa, questions, evaluation_embeds(qa, mode.mean, mode.inputs, raw, seed), batch_size, max_new_tokens
        )
        for mode in modes
    }


def score_checkpoint(
    model_dir: str,
    questions: Sequence[Question],
    raw: torch.Tensor,
    modes: Sequence,
    batch_size: int,
    max_new_tokens: int,
    seed: int,
    device: str = "cpu",
    transfer_overrides: dict | None = None,
) -> dict:
    """`score_modes` on the checkpoint in `model_dir` (`load_image_qa`: float32 on `device`, with
    `transfer_overrides` applied for this scoring only)."""
    qa = load_image_qa(model_dir, device, transfer_overrides)
    return score_modes(qa, questions, raw, modes, batch_size, max_new_tokens, seed)
