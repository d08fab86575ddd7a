"""Multiple choice in the cloze formulation: each option is scored as the model's reply, the options not shown.

The SFT rows ask a lettered question (multiple-choice formulation, MCF: the options are listed "A. ..", the answer is
a letter). A small model may not learn MCF while it still ranks the options as continuations (cloze formulation,
CF). OLMES (Gu et al. 2024, arXiv 2406.08446, Sec. 3) therefore evaluates every model both ways and keeps the
better, since models below a scale cannot yet do MCF. Here each option is scored as the assistant's whole reply to
the bare question (e.g. "What is shown in the image?") after the image, in exactly the SFT rows' format and loss mask
(`unicorn_hf.training.data.tokenize_dialogue`: the reply and its end-of-turn token), as log p in nats.

Raw CF scores inherit the LM's prior over the option texts (OLMES' "pmi" normalisation divides by the answer's
unconditional probability for that reason). *Calibrated* scores subtract the same score under a content-free input,
the centroid of the evaluated inputs (contextual calibration, Zhao et al. 2021, arXiv 2102.09690), exactly as the
pretraining ladder does (`unicorn_hf.experiments.ladder.score_rungs`). The centroid uses no label.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from unicorn_hf.evaluation.answers import option_letters
from unicorn_hf.experiments.likelihood import labelled_log_likelihoods, ranked_correct
from unicorn_hf.experiments.questions import Question
from unicorn_hf.training.collator import UnicornDataCollator
from unicorn_hf.training.data import IMAGE_EMBEDS, caption_turn, tokenize_dialogue


@torch.inference_mode()
def reply_log_likelihoods(
    qa, questions: Sequence[str], replies: Sequence[str], embeds: torch.Tensor, batch_size: int
) -> torch.Tensor:
    """log p(reply + end-of-turn | chat prompt with the image and the question) in nats, one per row.

    Args:
        qa: a `unicorn_hf.evaluation.inference.UnicornImageQA` (its prompt template and chat template are used).
        questions: N user-turn texts without the image placeholder.
        replies: N assistant replies to score.
        embeds: [N, D] inputs already in the training space (no transfer here).
        batch_size: rows per forward pass.

    Returns: [N] float32 on CPU.

    Raises:
        ValueError: when a row makes no SFT row (`tokenize_dialogue`'s drop reason, e.g. an empty reply), naming it.
    """
    processor, model = qa.processor, qa.model
    if not len(questions) == len(replies) == len(embeds):
        raise ValueError(f"{len(questions)} questions, {len(replies)} replies and {len(embeds)} embeddings")
    collate = UnicornDataCollator(processor.tokenizer.pad_token_id, processor.image_token_id,
                                  model.config.num_image_tokens)  # fmt: skip
    rows = []
    for index, (question, reply, embed) in enumerate(zip(questions, replies, embeds, strict=True)):
        user = qa.prompt_template.replace("<image>", processor.image_token).format(question=question)
        row = {"id": str(index), "messages": caption_turn(reply, user), IMAGE_EMBEDS: embed.tolist()}
        tokenized = tokenize_dialogue(
            row, processor.tokenizer, processor.image_token, processor.image_token_id, 1, None, embeds.shape[-1],
            processor.chat_template, where="cloze scoring",
        )  # fmt: skip
        if tokenized["drop_reason"]:
            raise ValueError(f"reply {reply!r} to {question!r} makes no SFT row: {tokenized['drop_reason']}")
        rows.append(tokenized | {IMAGE_EMBEDS: row[IMAGE_EMBEDS]})
    return labelled_log_likelihoods(model, collate, rows, batch_size)


def cloze_scores(
    qa, questions: Sequence[Question], embeds: torch.Tensor, cloze_question: str, batch_size: int
) -> torch.Tensor:
    """[Q, K] log p(option | image, `cloze_question`) of each mc question's K options with its input embeds [Q, D]."""
    num_options = len(questions[0].options)
    replies = [option for question in questions for option in question.options]  # Q*K, question-major
    repeated = embeds.repeat_interleave(num_options, dim=0)  # [Q*K, D]
    prompts = [cloze_question] * len(replies)
    return reply_log_likelihoods(qa, prompts, replies, repeated, batch_size).view(len(questions), num_options)


def null_cloze_scores(
    qa, questions: Sequence[Question], null: torch.Tensor, cloze_question: str, batch_size: int
) -> torch.Tensor:
    """[Q, K] the same scores under one content-free input null [D]; each distinct option is scored once."""
    options = sorted({option for question in questions for option in question.options})
    repeated = null.unsqueeze(0).expand(len(options), -1)  # [O, D]
    scores = reply_log_likelihoods(qa, [cloze_question] * len(options), options, repeated, batch_size)
    by_option = dict(zip(options, scores.tolist(), strict=True))
    return torch.tensor([[by_option[option] for option in question.options] for question in questions])


def cloze_credit(
    qa, questions: Sequence[Question], embeds: torch.Tensor, cloze_question: str, batch_size: int
) -> dict[str, list[float]]:
    """Per mc question, credit for ranking the right option first in the cloze formulation: `mc_cloze` (raw) and
    `mc_cloze_calibrated` (minus the scores under the centroid of `embeds` [Q, D]). Ties are credited 1/t
    (`likelihood.ranked_correct`), so a constant input scores chance exactly.

    Raises `ValueError` when a question is not multiple choice."""
    if any(question.kind != "mc" for question in questions):
        raise ValueError("cloze scoring takes multiple-choice questions only")
    answers = [option_letters(len(q.options)).index(q.answer) for q in questions]
    scores = cloze_scores(qa, questions, embeds, cloze_question, batch_size)  # [Q, K]
    null_scores = null_cloze_scores(qa, questions, embeds.float().mean(0), cloze_question, batch_size)  # [Q, K]
    return {
        "mc_cloze": ranked_correct(scores, answers).tolist(),
        "mc_cloze_calibrated": ranked_correct(scores - null_scores, answers).tolist(),
    }
