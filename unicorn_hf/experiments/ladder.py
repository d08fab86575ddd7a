"""The probe ladder: on the same held-out items, where does a text-only model lose the image?

Every rung ranks the same K candidate titles per held-out pair (the right one and K-1 distractors of the same source,
`unicorn_hf.experiments.questions.mc_question`); chance is 1/K.

- a `encoder`: the paired encoder alone, the image against the candidates' text embeddings (what the embeddings
  carry; the ceiling of any model on them).
- b `text`: the held-out pairs' own text, embedded and moved by the checkpoint's *text* side (no modality gap): does
  the model generalise to concepts it never trained on?
- c `image/<rule>`: the held-out real images through the checkpoint's *image* side, one entry per rule (the stored
  mean of unlabeled images, the evaluated set's own mean as in the paper's protocol, memory projection, ...).
- d blind controls: `blind/zero` (no image), `blind/shuffled` (another item's image, rung c's first rule) and
  `blind/null` (every item gets the same null vector).

After pretraining a model is scored by candidate likelihood (`score_rungs`): each candidate is the caption of a
pretraining row (`[bos] <image> title <eos>`, exactly `unicorn_hf.training.data.tokenize_caption` and the
training collator; for a checkpoint pretrained in the chat format, the title as the reply to its `caption_prompt`,
`tokenize_caption_turn`), and its score is log p(title + EOS | image) in nats. Raw likelihood inherits the LM's prior
over titles (IG-Captioner, arXiv 2311.17072, Sec. 3; VLMClassifier, arXiv 2406.18926), so each rung is also scored
*calibrated*: minus the same score under the rung's null vector, the centroid of the rung's own inputs (a
content-free input, as in contextual calibration, Zhao et al. 2021, arXiv 2102.09690). The null vector uses no label,
only the evaluated inputs, like the paper's evaluation-set image mean.

After SFT the same rung inputs are asked the held-out pairs' questions (`question_rungs`): the 4-way "what is
shown" and the balanced yes/no presence question of `unicorn_hf.experiments.questions.evaluation_questions`, scored
by the first answer token over the closed answer set and by the greedy reply (`unicorn_hf.experiments.scoring`), and
optionally the 4-way question in the cloze formulation, each option as the reply to the bare question, raw and
calibrated (`unicorn_hf.experiments.cloze`: the readout OLMES uses for models too small for lettered answers).

Reading the ladder: b at chance means the model does not generalise (more concepts, more steps); b high and c low
means the modality gap (transfer method); c high and the SFT answers at chance means SFT.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from unicorn_hf.experiments.cloze import cloze_credit
from unicorn_hf.experiments.likelihood import labelled_log_likelihoods, ranked_correct
from unicorn_hf.experiments.questions import Question, QuestionTemplates, group_by_source, mc_question
from unicorn_hf.experiments.scoring import correctness, score_questions, zero_shot_answers
from unicorn_hf.lit.pairs import Pair
from unicorn_hf.modeling.modality_transfer import IMAGE_MEAN_METHODS, TransferSettings
from unicorn_hf.training.collator import UnicornDataCollator
from unicorn_hf.training.data import IMAGE_EMBEDS, bos_ids, tokenize_caption, tokenize_caption_turn


@dataclass(frozen=True)
class LadderItem:
    """One held-out pair and its candidate titles; `answer_index` is the right one's position."""

    pair_id: str
    source: str
    text: str  # the pair's text in the form the checkpoint trained on (rung b's input)
    candidates: tuple[str, ...]
    answer_index: int


def ladder_items(pairs: Sequence[Pair], num_candidates: int, text_form: str, seed: int) -> list[LadderItem]:
    """One item per pair: `num_candidates` titles (distractors from the pair's own source, seeded), and the pair's
    `title` or `caption` (`text_form`) as rung b's text.

    Raises `ValueError` for an unknown `text_form`, or when a source holds too few titles for the distractors.
    """
    if text_form not in ("title", "caption"):
        raise ValueError(f"text_form must be 'title' or 'caption', got {text_form!r}")
    rng = random.Random(seed)
    by_source = group_by_source(list(pairs))
    templates = QuestionTemplates("", "", "", "")  # only the options are used
    items = []
    for pair in pairs:
        question = mc_question(pair, by_source, num_candidates, templates, rng)
        items.append(
            LadderItem(pair.id, pair.source, getattr(pair, text_form), question.options,
                       question.options.index(pair.title))
        )  # fmt: skip
    return items


def caption_log_likelihoods(
    model, processor, captions: Sequence[str], embeds: torch.Tensor, batch_size: int, caption_prompt: str | None = None
):
    """log p(caption + EOS | [bos] <image>) in nats, per row, in the pretraining rows' exact format.

    Args:
        model: a `UnicornForConditionalGeneration` (eval mode).
        captions: N texts.
        embeds: [N, D] inputs already in the training space (the model adds no transfer here).
        batch_size: rows per forward pass.
        caption_prompt: the user turn of a checkpoint pretrained in the chat format (its record's
            `caption_prompt`): each caption is then scored as the reply to it, with its end-of-turn token.

    Returns: [N] float32 on CPU.

    Raises:
        ValueError: when a caption makes no pretraining row (empty, or holding the image token), naming it.
    """
    tokenizer = processor.tokenizer
    bos = bos_ids(tokenizer)
    collate = UnicornDataCollator(tokenizer.pad_token_id, processor.image_token_id, model.config.num_image_tokens)
    rows = []
    for index, (caption, embed) in enumerate(zip(captions, embeds, strict=True)):
        row = {"id": str(index), "caption": caption, IMAGE_EMBEDS: embed.tolist()}
        # One <image> placeholder per row: the collator expands it to num_image_tokens, as in training.
        if caption_prompt is None:
            row = tokenize_caption(
                row, tokenizer, processor.image_token_id, 1, None, embeds.shape[-1], bos,
            )  # fmt: skip
        else:
            row = tokenize_caption_turn(
                row, caption_prompt, tokenizer=tokenizer, image_token=processor.image_token,
                image_token_id=processor.image_token_id, num_image_tokens=1, max_length=None,
                embed_dim=embeds.shape[-1], chat_template=processor.chat_template, where="candidate scoring",
            )  # fmt: skip
        if row["drop_reason"]:
            raise ValueError(f"candidate {caption!r} makes no pretraining row: {row['drop_reason']}")
        rows.append(row | {IMAGE_EMBEDS: embed.tolist()})
    return labelled_log_likelihoods(model, collate, rows, batch_size)


def candidate_scores(
    model, processor, embeds: torch.Tensor, items: Sequence[LadderItem], batch_size: int,
    caption_prompt: str | None = None,
):  # fmt: skip
    """[N, K] log-likelihood of each item's K candidate titles given its input embeds [N, D] (training space), in
    the checkpoint's pretraining format (`caption_log_likelihoods`)."""
    num_candidates = len(items[0].candidates)
    captions = [candidate for item in items for candidate in item.candidates]  # N*K, item-major
    repeated = embeds.repeat_interleave(num_candidates, dim=0)  # [N*K, D]
    scores = caption_log_likelihoods(model, processor, captions, repeated, batch_size, caption_prompt)
    return scores.view(len(items), num_candidates)


def null_candidate_scores(
    model, processor, null: torch.Tensor, items: Sequence[LadderItem], batch_size: int,
    caption_prompt: str | None = None,
):  # fmt: skip
    """[N, K] log-likelihood of each item's candidates under one input vector null [D]; each distinct title is
    scored once (the input does not depend on the item)."""
    titles = sorted({candidate for item in items for candidate in item.candidates})
    repeated = null.unsqueeze(0).expand(len(titles), -1)  # [T, D]
    scores = caption_log_likelihoods(model, processor, titles, repeated, batch_size, caption_prompt)
    by_title = dict(zip(titles, scores.tolist(), strict=True))
    return torch.tensor([[by_title[candidate] for candidate in item.candidates] for item in items])


@dataclass(frozen=True)
class ImageRule:
    """How rung c moves the real images: `image_mean` (eval | image | text | none: what mean_shift / c3 subtract)
    and whether they are projected onto the checkpoint's text memory first (DeCap)."""

    name: str
    image_mean: str = "image"
    project_onto_memory: bool = False


def apply_image_rule(model, raw: torch.Tensor, rule: ImageRule) -> torch.Tensor:
    """Raw image embeddings [N, D] -> [N, D] through the checkpoint's image side under `rule`; the checkpoint's own
    settings are restored afterwards.

    Raises `ValueError` when the rule asks for memory projection and the checkpoint carries no memory.
    """
    config = model.config
    saved = dict(config.modality_transfer)
    try:
        if rule.project_onto_memory and not TransferSettings.from_dict(saved).projects_images:
            projected = TransferSettings.from_dict({**saved, "project_images_onto_memory": True})
            config.modality_transfer = projected.to_dict()
        settings = TransferSettings.from_dict(config.modality_transfer)
        image_mean: str | torch.Tensor | None = rule.image_mean
        if settings.method not in IMAGE_MEAN_METHODS or settings.projects_images:
            image_mean = None  # the method's image side takes no mean (see transfer_image)
        elif image_mean == "eval":
            image_mean = raw.float().mean(0)  # [D]: the evaluated set's own mean (paper's protocol)
        return model.transfer_images(raw, image_mean=image_mean).float()
    finally:
        config.modality_transfer = saved


def rung_inputs(
    model, raw_text: torch.Tensor, raw_images: torch.Tensor, rules: Sequence[ImageRule], seed: int
) -> dict[str, torch.Tensor]:
    """The inputs [N, D] of rungs b, c (one per rule) and d. raw_text / raw_images: [N, D] from the paired encoder."""
    inputs = {"text": model.transfer_texts(raw_text).float()}
    for rule in rules:
        inputs[f"image/{rule.name}"] = apply_image_rule(model, raw_images, rule)
    first = inputs[f"image/{rules[0].name}"]
    order = torch.randperm(len(first), generator=torch.Generator().manual_seed(seed))
    inputs["blind/shuffled"] = first[order]
    inputs["blind/zero"] = torch.zeros_like(first)
    inputs["blind/null"] = first.mean(0, keepdim=True).expand_as(first).contiguous()
    return inputs


def score_rungs(
    model, processor, inputs: dict[str, torch.Tensor], items: Sequence[LadderItem], batch_size: int,
    progress: Callable[[str], None] | None = None, caption_prompt: str | None = None,
) -> dict[str, dict[str, list[float]]]:  # fmt: skip
    """Per rung: per-item credit `raw` and `calibrated` (minus the score under the rung's null vector, the centroid
    of its inputs), and the raw scores [N, K]. The blind rungs are calibrated against their own null too.
    `caption_prompt`: the checkpoint's pretraining user turn (chat format), None for the plain format."""
    answers = [item.answer_index for item in items]
    results = {}
    for name, embeds in inputs.items():
        if progress is not None:
            progress(name)
        scores = candidate_scores(model, processor, embeds, items, batch_size, caption_prompt)  # [N, K]
        null = embeds.mean(0)  # [D]
        null_scores = null_candidate_scores(model, processor, null, items, batch_size, caption_prompt)  # [N, K]
        results[name] = {
            "raw": ranked_correct(scores, answers).tolist(),
            "calibrated": ranked_correct(scores - null_scores, answers).tolist(),
            "scores": scores.tolist(),
        }
    return results


def encoder_rung(
    raw_images: torch.Tensor, items: Sequence[LadderItem], encode_text: Callable, prompts: dict[str, str]
) -> list[float]:
    """Rung a: [N] credit of the encoder alone, the image [N, D] against each candidate's text embedding
    (`prompts[source]` with a `{title}` slot: the encoder's own caption form)."""
    texts = [prompts[item.source].format(title=title) for item in items for title in item.candidates]
    candidates = encode_text(texts).view(len(items), len(items[0].candidates), -1)  # [N, K, D]
    similarity = torch.einsum("nkd,nd->nk", candidates.float(), raw_images.float())  # [N, K]
    return ranked_correct(similarity, [item.answer_index for item in items]).tolist()


QUESTION_KINDS = ("mc", "yes_no")


def question_rungs(
    qa, inputs: dict[str, torch.Tensor], pair_ids: Sequence[str], questions: Sequence[Question], batch_size: int,
    max_new_tokens: int, progress: Callable[[str], None] | None = None, cloze_question: str | None = None,
) -> tuple[dict[str, dict[str, list[float]]], dict[str, dict[str, list[str]]]]:  # fmt: skip
    """The SFT ladder: per rung, every question asked with its pair's input (inputs: rung -> [N, D] in `pair_ids`
    order, training space).

    Returns (credit, chosen). credit, per rung and question kind: `<kind>` = 0/1 by the first answer token
    (likelihood) and `<kind>_generation` = 0/1 by the greedy reply, in the questions' order within the kind; with
    `cloze_question` (the bare "what is shown" question) the mc questions are also scored in the cloze formulation,
    `mc_cloze` and `mc_cloze_calibrated` (`unicorn_hf.experiments.cloze.cloze_credit`). chosen, per rung and kind:
    the answer the first token chose ("A".., "yes"/"no"), which shows a constant answer directly.

    Raises `KeyError` naming a question whose pair has no input row.
    """
    row_of = {pair_id: row for row, pair_id in enumerate(pair_ids)}
    missing = sorted({q.pair_id for q in questions} - set(row_of))
    if missing:
        raise KeyError(f"questions about pairs with no input row: {missing[:5]}")
    rows = torch.tensor([row_of[q.pair_id] for q in questions])  # [Q]
    mc = [i for i, question in enumerate(questions) if question.kind == "mc"]
    results, chosen = {}, {}
    for name, embeds in inputs.items():
        if progress is not None:
            progress(name)
        scored = score_questions(qa, questions, embeds[rows], batch_size, max_new_tokens)
        results[name] = _by_kind(scored, questions)
        chosen[name] = {
            kind: [answer for answer, q in zip(scored["likelihood_answers"], questions, strict=True) if q.kind == kind]
            for kind in QUESTION_KINDS
            if any(q.kind == kind for q in questions)
        }
        if cloze_question is not None and mc:
            mc_questions = [questions[i] for i in mc]
            results[name] |= cloze_credit(qa, mc_questions, embeds[rows[mc]], cloze_question, batch_size)
    return results, chosen


def _by_kind(scored: dict[str, list[float]], questions: Sequence[Question]) -> dict[str, list[float]]:
    """{"likelihood": [Q], "generation": [Q]} -> {"mc": [...], "mc_generation": [...], "yes_no": ..., ...}."""
    split = {}
    for kind in QUESTION_KINDS:
        positions = [i for i, question in enumerate(questions) if question.kind == kind]
        if positions:
            split[kind] = [scored["likelihood"][i] for i in positions]
            split[f"{kind}_generation"] = [scored["generation"][i] for i in positions]
    return split


def encoder_question_rung(
    raw_images: torch.Tensor, pair_ids: Sequence[str], questions: Sequence[Question], encode_text: Callable,
    prompt_for_title: Callable[[str, str], str],
) -> dict[str, list[float]]:  # fmt: skip
    """Rung a of the SFT ladder: the encoder's own answers to the questions (`scoring.zero_shot_answers`: cosine
    with each option's caption), split by kind like `question_rungs`. raw_images: [N, D] in `pair_ids` order."""
    row_of = {pair_id: row for row, pair_id in enumerate(pair_ids)}
    embeds = raw_images[torch.tensor([row_of[q.pair_id] for q in questions])]  # [Q, D]
    correct = correctness(zero_shot_answers(embeds, questions, encode_text, prompt_for_title), questions).tolist()
    split = _by_kind({"likelihood": correct, "generation": correct}, questions)
    return {kind: values for kind, values in split.items() if not kind.endswith("_generation")}
