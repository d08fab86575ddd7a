"""Datasets -> model inputs: loss masks, the collator, bad input (clear errors or counted drops), statistics checks."""

from __future__ import annotations

import json

import pytest
import torch
from datasets import Dataset

from unicorn_fixtures.synthetic import write_synthetic_transfer_folder
from unicorn_hf.modeling import UnicornProcessor
from unicorn_hf.training.collator import UnicornDataCollator
from unicorn_hf.training.data import prepare_dataset
from unicorn_hf.transfer.statistics import TransferStatistics
from unicorn_hf.utils.hub import load_dataset_folder


DIM = 16
NUM_IMAGE_TOKENS = 4


@pytest.fixture(scope="module")
def processor(smollm2_path):
    from tokenizers import AddedToken
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(smollm2_path)
    tokenizer.add_tokens([AddedToken("<image>", special=True, normalized=False)], special_tokens=True)
    return UnicornProcessor(tokenizer=tokenizer, num_image_tokens=NUM_IMAGE_TOKENS)


@pytest.fixture(scope="module")
def transfer_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("transfer")
    return write_synthetic_transfer_folder(
        folder, num_rows=6, embed_dim=DIM, encoder_id="test/encoder", caption_words=10, seed=0
    )


def _turns(user: str, assistant: str) -> list[dict]:
    return [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]


def _dialogue(messages, embeds=None, row_id="r0"):
    return {"id": row_id, "messages": messages, "image_embeds": embeds if embeds is not None else [0.1] * DIM}


def _sft(rows, processor, max_length=None):
    return prepare_dataset(
        Dataset.from_list(rows), stage="sft", processor=processor, embed_dim=DIM, max_length=max_length
    )


def test_dialogue_loss_mask_covers_assistant_turns_only(processor):
    messages = [
        {"role": "user", "content": "<image>\nWhat is it?"},
        {"role": "assistant", "content": "A red boat."},
        {"role": "user", "content": "Where?"},
        {"role": "assistant", "content": "On a lake."},
    ]
    prepared = _sft([_dialogue(messages)], processor)
    row = prepared.dataset[0]
    tokenizer = processor.tokenizer
    targets = tokenizer.decode([t for t, m in zip(row["input_ids"], row["loss_mask"], strict=True) if m])
    # Both replies with their end-of-turn token (the model must learn to stop), nothing from the user or system.
    assert targets == "A red boat.<|im_end|>\nOn a lake.<|im_end|>\n"
    assert row["input_ids"].count(processor.image_token_id) == 1


def test_caption_plain_format(processor, transfer_folder):
    captions = load_dataset_folder(transfer_folder, "captions")
    prepared = prepare_dataset(captions, stage="pretrain", processor=processor, embed_dim=DIM, max_length=None)
    row = prepared.dataset[0]
    tokenizer = processor.tokenizer
    assert row["input_ids"][0] == processor.image_token_id  # SmolLM2 adds no BOS
    targets = [t for t, m in zip(row["input_ids"], row["loss_mask"], strict=True) if m]
    assert tokenizer.decode(targets) == captions[0]["caption"] + tokenizer.eos_token
    assert prepared.drops.rows_dropped == 0 and len(prepared.dataset) == len(captions)


def test_caption_chat_format_is_the_sft_row_of_the_caption_as_the_reply(processor, transfer_folder):
    """With `caption_prompt`, a pretraining row is exactly the SFT row of the one-turn dialogue (prompt, caption):
    same ids, loss on the caption and its end-of-turn token only."""
    captions = load_dataset_folder(transfer_folder, "captions")
    prompt = "<image>\nWhat is shown in the image?"
    prepared = prepare_dataset(
        captions, stage="pretrain", processor=processor, embed_dim=DIM, max_length=None, caption_prompt=prompt
    )
    row, caption = prepared.dataset[0], captions[0]["caption"]
    as_sft = _sft([_dialogue(_turns(prompt, caption), embeds=captions[0]["image_embeds"])], processor).dataset[0]
    assert (row["input_ids"], row["loss_mask"]) == (as_sft["input_ids"], as_sft["loss_mask"])
    targets = [t for t, m in zip(row["input_ids"], row["loss_mask"], strict=True) if m]
    assert processor.tokenizer.decode(targets) == caption + "<|im_end|>\n"
    assert row["input_ids"].count(processor.image_token_id) == 1
    assert prepared.drops.rows_dropped == 0 and len(prepared.dataset) == len(captions)


def test_caption_chat_format_counts_bad_captions_and_rejects_a_bad_prompt(processor):
    rows = [
        {"id": "ok", "caption": "a cat", "image_embeds": [0.1] * DIM},
        {"id": "blank", "caption": "  ", "image_embeds": [0.1] * DIM},
        {"id": "token", "caption": "a <image> cat", "image_embeds": [0.1] * DIM},
    ]
    prepared = prepare_dataset(Dataset.from_list(rows), stage="pretrain", processor=processor, embed_dim=DIM,
                               max_length=None, caption_prompt="<image>\nWhat is it?")  # fmt: skip
    assert prepared.dataset["id"] == ["ok"]
    assert dict(prepared.drops.dropped) == {"empty_caption": 1, "multiple_image_tokens": 1}
    for prompt in ("What is it?", "<image><image> What is it?"):
        with pytest.raises(ValueError, match="caption_prompt must hold the image token"):
            prepare_dataset(Dataset.from_list(rows), stage="pretrain", processor=processor, embed_dim=DIM,
                            max_length=None, caption_prompt=prompt)  # fmt: skip
    dialogues = Dataset.from_list([_dialogue(_turns("<image>\nHi", "Hello."))])
    with pytest.raises(ValueError, match="SFT rows carry their own user turns"):
        prepare_dataset(dialogues, stage="sft", processor=processor, embed_dim=DIM,
                        max_length=None, caption_prompt="<image>\nWhat is it?")  # fmt: skip


def test_collator_expands_pads_and_masks(processor):
    collator = UnicornDataCollator(
        pad_token_id=processor.tokenizer.pad_token_id,
        image_token_id=processor.image_token_id,
        num_image_tokens=NUM_IMAGE_TOKENS,
        embeds_dtype=torch.bfloat16,
    )
    image = processor.image_token_id
    rows = [
        {"input_ids": [image, 10, 11, 12], "loss_mask": [0, 1, 1, 1], "image_embeds": [0.5] * DIM},
        {"input_ids": [7, image, 20], "loss_mask": [0, 0, 1], "image_embeds": [0.25] * DIM},
    ]
    batch = collator(rows)
    n = NUM_IMAGE_TOKENS
    assert batch["input_ids"].shape == (2, n + 3)
    assert batch["input_ids"][0].tolist() == [image] * n + [10, 11, 12]
    assert batch["input_ids"][1].tolist() == [7] + [image] * n + [20, processor.tokenizer.pad_token_id]
    assert batch["attention_mask"][1].tolist() == [1] * (n + 2) + [0]
    assert batch["labels"][0].tolist() == [-100] * n + [10, 11, 12]
    assert batch["labels"][1].tolist() == [-100] * (n + 1) + [20, -100]  # prompt, image, padding all ignored
    assert batch["image_embeds"].shape == (2, DIM) and batch["image_embeds"].dtype == torch.bfloat16


def test_untrainable_dialogues_are_dropped_and_counted(processor):
    ok = [{"role": "user", "content": "<image>\nHi"}, {"role": "assistant", "content": "Hello."}]
    rows = [
        _dialogue(ok, row_id="ok"),
        _dialogue(_turns("Hi", "x"), row_id="none"),
        _dialogue(_turns("<image><image>", "x"), row_id="2"),
        _dialogue(_turns("<image>\nHi", "  "), row_id="empty"),
        _dialogue(ok, embeds=[float("nan")] * DIM, row_id="nan"),
    ]
    prepared = _sft(rows, processor)
    assert prepared.dataset["id"] == ["ok"]
    assert dict(prepared.drops.dropped) == {
        "no_image_token": 1,
        "multiple_image_tokens": 1,
        "empty_assistant_turn": 1,
        "non_finite_image_embeds": 1,
    }
    assert prepared.drops.examples["empty_assistant_turn"] == ["empty"]


def test_too_long_caption_is_truncated_never_the_image(processor, transfer_folder):
    captions = load_dataset_folder(transfer_folder, "captions")
    max_length = NUM_IMAGE_TOKENS + 4  # the image positions plus 4 caption tokens
    prepared = prepare_dataset(captions, stage="pretrain", processor=processor, embed_dim=DIM, max_length=max_length)
    assert prepared.rows_truncated == len(captions) and prepared.drops.rows_dropped == 0
    for ids, mask in zip(prepared.dataset["input_ids"], prepared.dataset["loss_mask"], strict=True):
        assert ids[0] == processor.image_token_id
        assert len(ids) + NUM_IMAGE_TOKENS - 1 == max_length
        assert sum(mask) == 4 and ids[-1] != processor.tokenizer.eos_token_id  # a cut caption gets no EOS


def test_too_long_dialogue_truncated_or_dropped(processor):
    long_reply = "word " * 200
    rows = [
        _dialogue(_turns("<image>\nTell", long_reply), row_id="a"),
        # the assistant reply starts beyond max_length: nothing left to learn from
        _dialogue(_turns("<image>\n" + long_reply, "x"), row_id="b"),
    ]
    prepared = _sft(rows, processor, max_length=64)
    assert prepared.dataset["id"] == ["a"] and prepared.rows_truncated == 1
    assert dict(prepared.drops.dropped) == {"no_assistant_tokens_within_max_length": 1}
    assert len(prepared.dataset[0]["input_ids"]) + NUM_IMAGE_TOKENS - 1 == 64


def test_dataset_errors_are_clear(processor, transfer_folder):
    captions = load_dataset_folder(transfer_folder, "captions")
    with pytest.raises(ValueError, match="no 'image_embeds' column"):
        prepare_dataset(captions.remove_columns("image_embeds"), stage="pretrain", processor=processor, embed_dim=DIM,
                        max_length=None)  # fmt: skip
    with pytest.raises(ValueError, match="16 wide but the model expects embed_dim=32"):
        prepare_dataset(captions, stage="pretrain", processor=processor, embed_dim=32, max_length=None)
    with pytest.raises(ValueError, match="column named"):
        prepare_dataset(captions.rename_column("seed", "image"), stage="pretrain", processor=processor,
                        embed_dim=DIM, max_length=None)  # fmt: skip
    with pytest.raises(ValueError, match="cannot hold num_image_tokens"):
        prepare_dataset(captions, stage="pretrain", processor=processor, embed_dim=DIM, max_length=NUM_IMAGE_TOKENS)


def test_statistics_contract_and_mismatch(transfer_folder, tmp_path):
    stats = TransferStatistics.load(transfer_folder, source="org/dataset")
    assert stats.dim == DIM and stats.encoder_id == "test/encoder" and stats.text_mean.shape == (DIM,)
    assert stats.source == "org/dataset"  # how records name it, not saved
    stats.check_matches(DIM, "test/encoder", what="YAML")
    with pytest.raises(ValueError, match="embed_dim=1280 but the dataset's embeddings"):
        stats.check_matches(1280, None, what="YAML")
    with pytest.raises(ValueError, match="names encoder 'other'"):
        stats.check_matches(None, "other", what="YAML")
    with pytest.raises(FileNotFoundError, match="transfer_stats"):
        TransferStatistics.load(tmp_path)
    (tmp_path / "transfer_stats.json").write_text(json.dumps({"dim": DIM}))
    tensors = (transfer_folder / "transfer_stats.safetensors").read_bytes()
    (tmp_path / "transfer_stats.safetensors").write_bytes(tensors)
    with pytest.raises(ValueError, match="no 'encoder_id' field"):
        TransferStatistics.load(tmp_path)


def test_a_wrong_length_embedding_names_the_dataset_row_and_field(processor):
    """Issue 22 case 5 (an in-memory or Hub dataset; a local folder names the shard file when loaded, test_hub.py)."""
    rows = [_dialogue(_turns("<image>\nWhat?", "A boat."), row_id=f"r{i}") for i in range(3)]
    rows[2]["image_embeds"] = [0.1] * (DIM - 1)
    with pytest.raises(ValueError, match=rf"^my/data \[instructions\]: row 'r2': field 'image_embeds' has {DIM - 1} "
                       rf"values, expected {DIM} \(the model's embed_dim\)"):  # fmt: skip
        prepare_dataset(Dataset.from_list(rows), stage="sft", processor=processor, embed_dim=DIM, max_length=None,
                        where="my/data [instructions]")  # fmt: skip
