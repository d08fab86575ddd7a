"""Stage-3 datasets -> model inputs: validation, tokenization, loss masks, counted drops.

Both stages turn a row into `input_ids` holding ONE `<image>` token (the collator expands it to `num_image_tokens`
copies, so the stored dataset does not grow 576-fold), a 0/1 `loss_mask` of the same length (1 = the token is a
target) and the row's `image_embeds`.

- Pretraining, the paper's "plain" format: `[bos] <image> caption <eos>`, loss on the caption and EOS only. A caption
  that does not fit is truncated (and counted); the image token is never cut.
- SFT: the dialogue rendered with the chat template; loss on the assistant turns (each with its end-of-turn token).
  Rows that cannot train are dropped with a reason in a `DropLog`: no `<image>`, two of them, an empty assistant
  turn, or nothing left to learn from after truncation to `max_length`.

Dataset-level problems (no `image_embeds` column, a column named `image`/`images`, another encoder's width) are
errors: they mean the wrong folder or config, not a bad row.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from datasets import Dataset

from unicorn_hf.data_contract import FORBIDDEN_COLUMNS, IMAGE_EMBEDS
from unicorn_hf.utils.drops import DropLog


logger = logging.getLogger(__name__)

_KEPT_COLUMNS = ("id", "input_ids", "loss_mask", IMAGE_EMBEDS)


# ---- dataset-level checks ----------------------------------------------------------------------------------------
def check_columns(dataset: Dataset, required: tuple[str, ...], where: str) -> None:
    """Raise a clear error when the dataset is not a stage-3 output of the expected config."""
    columns = set(dataset.column_names)
    if bad := [c for c in FORBIDDEN_COLUMNS if c in columns]:
        raise ValueError(
            f"{where} has a column named {bad}: TRL would treat it as PIL images. Unicorn stores the embedding in "
            f"{IMAGE_EMBEDS!r}; rename the column."
        )
    if IMAGE_EMBEDS not in columns:
        raise ValueError(
            f"{where} has no {IMAGE_EMBEDS!r} column (columns: {sorted(columns)}). Train on the output of the "
            "transfer stage (recipes/transfer.py), which adds the embeddings, not on the synthesis output."
        )
    if missing := [c for c in required if c not in columns]:
        raise ValueError(f"{where} lacks column(s) {missing} (columns: {sorted(columns)}).")
    if len(dataset) == 0:
        raise ValueError(f"{where} is empty.")


def check_embed_width(dataset: Dataset, embed_dim: int, where: str) -> None:
    """The first row's width must be the model's (the column is a fixed-length list; rows are re-checked later)."""
    width = len(dataset[0][IMAGE_EMBEDS])
    if width != embed_dim:
        raise ValueError(
            f"{where}: image_embeds are {width} wide but the model expects embed_dim={embed_dim}; the dataset was "
            "embedded by another encoder than the one the model / statistics name."
        )


# ---- row -> tokens -----------------------------------------------------------------------------------------------
def _bad_embedding_reason(embeds: list[float] | None, embed_dim: int, row_id: str, where: str) -> str | None:
    """A drop reason for a non-finite embedding; a wrong length raises, naming the dataset, row and field (a local
    folder's shard file is named when it is loaded: `hub.check_list_widths`)."""
    if embeds is None or len(embeds) != embed_dim:
        found = "no value" if embeds is None else f"{len(embeds)} values"
        raise ValueError(
            f"{where}: row {row_id!r}: field {IMAGE_EMBEDS!r} has {found}, expected {embed_dim} (the model's "
            "embed_dim)."
        )
    if not all(math.isfinite(x) for x in embeds):
        return "non_finite_image_embeds"
    return None


def _budget(num_image_tokens: int, max_length: int | None) -> int | None:
    """How many stored tokens fit once `<image>` counts for `num_image_tokens` positions (None = no limit)."""
    return None if max_length is None else max_length - (num_image_tokens - 1)


def tokenize_caption(
    row: dict,
    tokenizer,
    image_token_id: int,
    num_image_tokens: int,
    max_length: int | None,
    embed_dim: int,
    bos: list[int],
    where: str = "dataset",
) -> dict:
    """Pretraining ("plain" format): `[bos] <image> caption <eos>`, loss on caption + EOS."""
    row_id = str(row.get("id"))
    out = {"input_ids": [], "loss_mask": [], "drop_reason": "", "truncated": False}
    if reason := _bad_embedding_reason(row[IMAGE_EMBEDS], embed_dim, row_id, where):
        return {**out, "drop_reason": reason}
    caption = (row["caption"] or "").strip()
    if not caption:
        return {**out, "drop_reason": "empty_caption"}
    prefix = [*bos, image_token_id]
    caption_ids = tokenizer(caption, add_special_tokens=False)["input_ids"]
    if image_token_id in caption_ids:
        return {**out, "drop_reason": "image_token_in_caption"}
    target = [*caption_ids, tokenizer.eos_token_id]
    budget = _budget(num_image_tokens, max_length)
    truncated = budget is not None and len(prefix) + len(target) > budget
    if truncated:
        # Keep the image and as much caption as fits; no EOS after a cut caption (it did not end there).
        target = caption_ids[: budget - len(prefix)]
    return {
        "input_ids": prefix + target,
        "loss_mask": [0] * len(prefix) + [1] * len(target),
        "drop_reason": "",
        "truncated": truncated,
    }


def caption_turn(caption: str, caption_prompt: str) -> list[dict]:
    """A caption (or any reply) as the assistant's answer to one user turn, `caption_prompt`, which holds the image
    placeholder: the one-turn dialogue of chat-format pretraining and of cloze scoring."""
    return [{"role": "user", "content": caption_prompt}, {"role": "assistant", "content": caption}]


def tokenize_caption_turn(row: dict, caption_prompt: str, **dialogue_kwargs) -> dict:
    """Pretraining in the chat format: the caption as the reply to `caption_prompt`, in exactly the SFT rows' chat
    template and loss mask (`tokenize_dialogue`: loss on the reply and its end-of-turn token).

    LLaVA pretrains in its "plain" format (`tokenize_caption`) and relies on SFT to move the image into the chat
    turn; with a few thousand SFT dialogues that move did not happen here (recipes/concept_titles/README.md), so the
    projector can instead learn the image where SFT and inference read it. `dialogue_kwargs` are
    `tokenize_dialogue`'s. A caption holding the image placeholder is dropped (`multiple_image_tokens`).
    """
    caption = (row["caption"] or "").strip()
    if not caption:
        return {"input_ids": [], "loss_mask": [], "drop_reason": "empty_caption", "truncated": False}
    return tokenize_dialogue({**row, "messages": caption_turn(caption, caption_prompt)}, **dialogue_kwargs)


def bos_ids(tokenizer) -> list[int]:
    """The BOS the tokenizer puts in front of plain text: [bos] for Llama-3, [] for SmolLM2."""
    ids = tokenizer("a")["input_ids"]
    return [ids[0]] if ids and tokenizer.bos_token_id is not None and ids[0] == tokenizer.bos_token_id else []


def assistant_char_spans(messages: list[dict], tokenizer, chat_template: str | None) -> tuple[str, list[tuple]]:
    """Render the dialogue and return (text, [(start, end)] character spans of every assistant turn).

    Template-agnostic: the span of assistant turn i starts where `messages[:i]` + generation prompt ends and stops
    where `messages[:i+1]` ends, so it holds the reply and its end-of-turn token (the model learns to stop). This
    needs a prefix-preserving template (ChatML, Llama-3, ...); one that is not raises instead of mis-masking.
    """

    def render(msgs: list[dict], add_generation_prompt: bool) -> str:
        return tokenizer.apply_chat_template(
            msgs, tokenize=False, add_generation_prompt=add_generation_prompt, chat_template=chat_template
        )

    text = render(messages, False)
    spans = []
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        before, through = render(messages[:i], True), render(messages[: i + 1], False)
        if not (text.startswith(through) and through.startswith(before)):
            raise ValueError(
                "The chat template is not prefix-preserving (rendering the first turns of a dialogue does not give a "
                "prefix of the whole), so assistant turns cannot be located; set `chat_template` in the SFT YAML."
            )
        spans.append((len(before), len(through)))
    return text, spans


def tokenize_dialogue(
    row: dict,
    tokenizer,
    image_token: str,
    image_token_id: int,
    num_image_tokens: int,
    max_length: int | None,
    embed_dim: int,
    chat_template: str | None,
    where: str = "dataset",
) -> dict:
    """SFT: the rendered dialogue, loss on assistant turns only; drop reasons for rows that cannot train."""
    row_id = str(row.get("id"))
    out = {"input_ids": [], "loss_mask": [], "drop_reason": "", "truncated": False}
    if reason := _bad_embedding_reason(row[IMAGE_EMBEDS], embed_dim, row_id, where):
        return {**out, "drop_reason": reason}
    messages = [{"role": m["role"], "content": m["content"]} for m in row["messages"]]
    counts = [(m["content"] or "").count(image_token) for m in messages]
    first_user = next((i for i, m in enumerate(messages) if m["role"] == "user"), None)
    if sum(counts) == 0:
        return {**out, "drop_reason": "no_image_token"}
    if sum(counts) > 1:
        return {**out, "drop_reason": "multiple_image_tokens"}
    if first_user is None or counts[first_user] != 1:
        return {**out, "drop_reason": "image_token_not_in_first_user_turn"}
    if not any(m["role"] == "assistant" for m in messages):
        return {**out, "drop_reason": "no_assistant_turn"}
    if any(m["role"] == "assistant" and not (m["content"] or "").strip() for m in messages):
        return {**out, "drop_reason": "empty_assistant_turn"}
    text, spans = assistant_char_spans(messages, tokenizer, chat_template)
    # The template already wrote any BOS into the text; a second one from the tokenizer would be wrong.
    encoding = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    input_ids = encoding["input_ids"]
    loss_mask = [int(any(s <= start < e for s, e in spans)) for start, _ in encoding["offset_mapping"]]
    image_position = input_ids.index(image_token_id)
    budget = _budget(num_image_tokens, max_length)
    truncated = budget is not None and len(input_ids) > budget
    if truncated:
        if image_position >= budget:
            return {**out, "drop_reason": "image_token_beyond_max_length"}
        input_ids, loss_mask = input_ids[:budget], loss_mask[:budget]
        if not any(loss_mask):
            return {**out, "drop_reason": "no_assistant_tokens_within_max_length"}
    return {"input_ids": input_ids, "loss_mask": loss_mask, "drop_reason": "", "truncated": truncated}


# ---- dataset -> training dataset ---------------------------------------------------------------------------------
@dataclass
class PreparedData:
    dataset: Dataset  # columns: id, input_ids, loss_mask, image_embeds
    drops: DropLog
    rows_truncated: int

    def to_dict(self) -> dict:
        return {**self.drops.to_dict(), "rows_truncated": self.rows_truncated}


def prepare_dataset(
    dataset: Dataset,
    *,
    stage: str,
    processor,
    embed_dim: int,
    max_length: int | None,
    chat_template: str | None = None,
    caption_prompt: str | None = None,
    num_proc: int | None = None,
    where: str = "dataset",
) -> PreparedData:
    """Validate and tokenize a stage-3 config for `stage` ("pretrain": captions, "sft": instructions).

    Pretraining rows are `[bos] <image> caption <eos>` (the paper's and LLaVA's plain format), or, with
    `caption_prompt` (a user turn holding `processor.image_token` once), the caption as the reply to that turn in the
    chat template (`tokenize_caption_turn`).

    Raises:
        ValueError: a bad `stage`, `max_length` or `caption_prompt`, a missing chat template, or every row dropped.
    """
    if stage not in ("pretrain", "sft"):
        raise ValueError(f"stage must be 'pretrain' or 'sft', got {stage!r}.")
    tokenizer = processor.tokenizer
    num_image_tokens = processor.num_image_tokens
    check_columns(dataset, ("caption",) if stage == "pretrain" else ("messages",), where)
    check_embed_width(dataset, embed_dim, where)
    if max_length is not None and max_length < num_image_tokens + 2:
        raise ValueError(
            f"max_length={max_length} cannot hold num_image_tokens={num_image_tokens} image positions plus any "
            "text; raise max_length or lower num_image_tokens."
        )
    common = {
        "tokenizer": tokenizer,
        "image_token_id": processor.image_token_id,
        "num_image_tokens": num_image_tokens,
        "max_length": max_length,
        "embed_dim": embed_dim,
        "where": where,
    }
    if caption_prompt is not None:
        if stage != "pretrain":
            raise ValueError("caption_prompt formats pretraining captions; SFT rows carry their own user turns.")
        if caption_prompt.count(processor.image_token) != 1:
            raise ValueError(
                f"caption_prompt must hold the image token {processor.image_token!r} exactly once, got "
                f"{caption_prompt!r}"
            )
    if stage == "pretrain" and caption_prompt is None:
        function, fn_kwargs = tokenize_caption, {**common, "bos": bos_ids(tokenizer)}
    else:
        chat_template = chat_template or processor.chat_template or tokenizer.chat_template
        if chat_template is None:
            raise ValueError(
                f"{stage} in the chat format needs a chat template: the tokenizer has none, set `chat_template` in "
                "the YAML."
            )
        function = tokenize_dialogue if stage == "sft" else tokenize_caption_turn
        fn_kwargs = {**common, "image_token": processor.image_token, "chat_template": chat_template}
        if stage == "pretrain":
            fn_kwargs["caption_prompt"] = caption_prompt
    mapped = dataset.map(function, fn_kwargs=fn_kwargs, num_proc=num_proc, desc=f"Tokenizing {where} ({stage})")
    drops = DropLog(stage=f"training/{stage}", rows_in=len(mapped))
    ids = mapped["id"] if "id" in mapped.column_names else [str(i) for i in range(len(mapped))]
    for row_id, reason in zip(ids, mapped["drop_reason"], strict=True):
        if reason:
            drops.drop(reason, row_id)
    rows_truncated = sum(mapped["truncated"])
    kept = mapped.filter(lambda reason: not reason, input_columns="drop_reason", desc="Dropping untrainable rows")
    kept = kept.remove_columns([c for c in kept.column_names if c not in _KEPT_COLUMNS])
    logger.info("%s; %d row(s) truncated to max_length=%s", drops.summary(), rows_truncated, max_length)
    if drops.rows_dropped:
        logger.warning("Dropped rows by reason: %s (examples: %s)", dict(drops.dropped), drops.examples)
    if len(kept) == 0:
        raise ValueError(f"{where}: every row was dropped ({dict(drops.dropped)}); nothing to train on.")
    return PreparedData(dataset=kept, drops=drops, rows_truncated=rows_truncated)
