"""Does a trained arm use its embedding at all, on its own training text? Two probes that explain a null result.

A model that answers real images no better than blind either cannot transfer from text to images (the modality
gap), or never learned to read the embedding in the first place (too little training). These probes tell the two
apart on the training rows themselves, where no gap exists:

- pretraining: caption negative log-likelihood per token given the row's own embedding, another row's (shuffled)
  and none (zero). A projector that carries caption content gives own < shuffled; one that learned only a constant
  soft prompt, or none, gives own = shuffled.
- SFT: first-answer-token accuracy on the training dialogues' multiple-choice and yes/no first turns with the own,
  shuffled and zero embeddings (the same scoring as the evaluation). Far above chance with a zero embedding means
  the training text answers itself, and SFT need not look.
"""

from __future__ import annotations

import logging
import re

import numpy as np
import torch

from unicorn_hf.data_contract import IMAGE_EMBEDS, INSTRUCTIONS_CONFIG
from unicorn_hf.evaluation.answers import option_letters
from unicorn_hf.experiments.cloze import cloze_credit
from unicorn_hf.experiments.ladder import caption_log_likelihoods
from unicorn_hf.experiments.questions import Question
from unicorn_hf.experiments.scoring import correctness, likelihood_answers
from unicorn_hf.utils.hub import load_dataset_folder


logger = logging.getLogger(__name__)

OPTION_LINE = re.compile(r"^[A-Z]\. ")  # "A. cat": an option line as `questions.mc_question` writes it


def _controls(embeds: torch.Tensor, seed: int) -> dict[str, torch.Tensor]:
    order = torch.randperm(len(embeds), generator=torch.Generator().manual_seed(seed))
    return {"own": embeds, "shuffled": embeds[order], "zero": torch.zeros_like(embeds)}


@torch.inference_mode()
def caption_nll(model, processor, captions: list[str], embeds: torch.Tensor, seed: int) -> dict[str, float]:
    """Mean per-token caption NLL (nats) in exactly the pretraining rows' format and loss mask
    (`unicorn_hf.training.data.tokenize_caption`: `[bos] <image> caption <eos>`, loss on caption + EOS) under own /
    shuffled / zero embeddings [N, D], and how many rows score better with their own embedding than a shuffled one."""
    tokenizer = processor.tokenizer
    # scored tokens per row: the caption's and EOS (no max_length, so nothing is cut)
    scored = torch.tensor([len(tokenizer(c, add_special_tokens=False)["input_ids"]) + 1 for c in captions])  # [N]
    per_row = {
        name: -caption_log_likelihoods(model, processor, captions, control, batch_size=len(captions)) / scored
        for name, control in _controls(embeds, seed).items()
    }  # [N] each
    result = {f"nll_{name}": float(values.mean()) for name, values in per_row.items()}
    result["own_better_than_shuffled"] = float((per_row["own"] < per_row["shuffled"]).float().mean())
    return result


def _first_exchange(row: dict) -> tuple[str, str] | None:
    """(user text, stripped reply) of a training dialogue's first turn; None when it does not open user, assistant."""
    messages = row["messages"]
    if len(messages) < 2 or messages[0]["role"] != "user" or messages[1]["role"] != "assistant":
        return None
    return messages[0]["content"], messages[1]["content"].strip()


def lettered_mc_question(row: dict, image_token: str, num_options: int) -> Question | None:
    """The first turn of a training dialogue as a `Question` when it is a lettered multiple-choice question: a user
    turn with option lines "A. ..", "B. .." (exactly `num_options`, as `questions.mc_question` writes them) and a bare
    letter as the answer; None for any other first turn (stage-2 QA, reasoning, free-form mc)."""
    if (exchange := _first_exchange(row)) is None:
        return None
    user, answer = exchange
    letters = option_letters(num_options)
    lettered = [line for line in user.splitlines() if OPTION_LINE.match(line)]
    if [line[0] for line in lettered] != list(letters) or answer not in letters:
        return None  # not exactly the options A.. in order
    options = tuple(line[3:] for line in lettered)
    return Question(str(row.get("id", "train")), "mc", user.replace(image_token, "").strip(), answer, options)


def yes_no_question_of(row: dict, image_token: str) -> Question | None:
    """The first turn of a training dialogue as a `yes_no` `Question` when its reply is a bare "Yes" or "No" (as
    `questions.one_question_dialogue` writes it); None for any other first turn."""
    if (exchange := _first_exchange(row)) is None or exchange[1].lower() not in ("yes", "no"):
        return None
    user, answer = exchange
    return Question(str(row.get("id", "train")), "yes_no", user.replace(image_token, "").strip(), answer.lower())


def _first_token_accuracy(qa, questions: list[Question], embeds: torch.Tensor, batch_size: int, seed: int) -> dict:
    """`accuracy_<control>`: first-answer-token accuracy of `questions` under own / shuffled / zero embeddings."""
    result = {}
    for name, control in _controls(embeds, seed).items():
        _, first_logits = qa.generate_with_first_logits(
            control, [q.text for q in questions], batch_size=batch_size, max_new_tokens=1
        )
        answers = likelihood_answers(first_logits, questions, qa.processor.tokenizer)
        result[f"accuracy_{name}"] = float(np.mean(correctness(answers, questions)))
    return result


def training_mc_accuracy(
    qa, rows: list[dict], embeds: torch.Tensor, batch_size: int, seed: int, num_options: int,
    cloze_question: str | None = None,
) -> dict[str, float]:  # fmt: skip
    """First-answer-token accuracy (`accuracy_<control>`) on the first (multiple-choice) turn of training dialogues
    `rows` under own / shuffled / zero embeddings [N, D]; `qa` is a `UnicornImageQA` of the checkpoint. With
    `cloze_question` (the bare question), also the cloze formulation's accuracy, raw and calibrated
    (`accuracy_cloze_<control>`, `accuracy_cloze_calibrated_<control>`: `unicorn_hf.experiments.cloze`).

    Raises `ValueError` naming a row whose first turn is not a lettered `num_options`-way question
    (`lettered_mc_question`)."""
    questions = []
    for row in rows:
        question = lettered_mc_question(row, qa.processor.image_token, num_options)
        if question is None:
            raise ValueError(
                f"training row {row.get('id')!r}: the first turn is not a lettered {num_options}-way question"
            )
        questions.append(question)
    result = _first_token_accuracy(qa, questions, embeds, batch_size, seed)
    if cloze_question is not None:
        for name, control in _controls(embeds, seed).items():
            for scoring, credit in cloze_credit(qa, questions, control, cloze_question, batch_size).items():
                result[f"accuracy{scoring[2:]}_{name}"] = float(np.mean(credit))  # mc_cloze -> accuracy_cloze
    return result


def _rows_with_embeds(rows, chosen: list[int]) -> tuple[list[dict], torch.Tensor]:
    rows = rows.select(chosen)
    return rows.to_list(), torch.tensor(np.asarray(rows[IMAGE_EMBEDS], dtype=np.float32))  # [N, D]


def training_dialogue_probe(
    qa, dialogues_path: str | None, num_rows: int, batch_size: int, seed: int, num_options: int,
    cloze_question: str | None = None,
) -> dict | None:  # fmt: skip
    """`training_mc_accuracy` (with the cloze formulation when `cloze_question` is given) on the first `num_rows`
    dialogues of the stage-3 folder `dialogues_path` (the SFT rows, with their own embeddings) whose first turn is a
    lettered `num_options`-way question, next to chance 1/`num_options`; None when not asked for (no path, or 0
    rows). When the folder also has dialogues that open with a yes/no question (`yes_no_question_of`), the first
    `num_rows` of them are scored the same way under `yes_no` (first answer token, chance 0.5). Rows with another
    first turn (stage-2 QA, reasoning) are passed over and counted (`rows_not_lettered_mc`, which counts the yes/no
    rows too). A zero-embedding accuracy far above chance means the training text answers itself.

    Raises `ValueError` naming the folder when none of its rows is a lettered question."""
    if not dialogues_path or num_rows <= 0:
        return None

    rows = load_dataset_folder(dialogues_path, INSTRUCTIONS_CONFIG)
    image_token = qa.processor.image_token
    chosen_mc, chosen_yes_no, yes_no_questions, passed_over = [], [], [], 0
    for index, row in enumerate(rows.select_columns(["id", "messages"])):
        if len(chosen_mc) == num_rows and len(chosen_yes_no) == num_rows:
            break
        if lettered_mc_question(row, image_token, num_options) is not None:
            if len(chosen_mc) < num_rows:
                chosen_mc.append(index)
            continue
        passed_over += 1
        if len(chosen_yes_no) < num_rows and (question := yes_no_question_of(row, image_token)) is not None:
            chosen_yes_no.append(index)
            yes_no_questions.append(question)
    if not chosen_mc:
        raise ValueError(f"{dialogues_path}: no training dialogue opens with a lettered {num_options}-way question")
    mc_rows, mc_embeds = _rows_with_embeds(rows, chosen_mc)
    accuracy = training_mc_accuracy(qa, mc_rows, mc_embeds, batch_size, seed, num_options, cloze_question)
    logger.info("training dialogues (first turn): %s, chance %.3f", accuracy, 1 / num_options)
    result = {**accuracy, "chance": 1 / num_options, "rows": len(mc_rows), "rows_not_lettered_mc": passed_over}
    if chosen_yes_no:
        _, yes_no_embeds = _rows_with_embeds(rows, chosen_yes_no)
        yes_no = _first_token_accuracy(qa, yes_no_questions, yes_no_embeds, batch_size, seed)
        logger.info("training dialogues (yes/no first turn): %s, chance 0.5", yes_no)
        result["yes_no"] = {**yes_no, "chance": 0.5, "rows": len(yes_no_questions)}
    return result
