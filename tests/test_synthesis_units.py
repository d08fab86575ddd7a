"""Unit tests of the synthesis building blocks: seeds, filters, statistics, dialogues, config validation."""

import json
import math

import pytest

from unicorn_hf.synthesis.config import CaptionArguments, InstructionArguments, SeedArguments, TaskConfig
from unicorn_hf.synthesis.dialogues import assign_tasks, check_messages, to_messages
from unicorn_hf.synthesis.filters import filter_captions, trim_to_sentence
from unicorn_hf.synthesis.parsing import parse_dialogue
from unicorn_hf.synthesis.seeds import label_seeds, load_seeds
from unicorn_hf.synthesis.stats import text_statistics
from unicorn_hf.utils.drops import DropLog


def _source(path, **kwargs):
    return {"name": "open", "kind": "captions", "path": str(path), **kwargs}


def _seed_args(*sources, **kwargs):
    return SeedArguments(seed_sources=list(sources), **kwargs)


def test_local_seed_files_ids_duplicates_and_quality_filter(tmp_path):
    jsonl = tmp_path / "seeds.jsonl"
    rows = [
        {"img": 1, "text": "A dog runs on the beach."},
        {"img": 1, "text": "A brown dog on sand."},  # same image: one caption per image
        {"img": 2, "text": "a DOG runs   on the beach"},  # duplicate after normalisation
        {"img": 3, "text": "Hi."},  # too short
        {"img": 4, "text": "Кошка сидит на красном диване у окна."},  # not Latin
    ]
    jsonl.write_text("\n".join(json.dumps(row) for row in rows) + "\n")
    csv = tmp_path / "more.csv"
    csv.write_text("caption\nA red kite above a green field.\n")
    txt = tmp_path / "plain.txt"
    txt.write_text("A bowl of soup on a wooden table.\n\n")
    args = _seed_args(
        _source(jsonl, column="text", group_column="img"),
        {"name": "csv", "kind": "captions", "path": str(csv), "column": "caption"},
        {"name": "txt", "kind": "captions", "path": str(txt)},
        seed_min_words=3,
        seed_min_latin_ratio=0.9,
    )
    seeds, drops = load_seeds(args)
    assert [row["seed"] for row in seeds] == [
        "A dog runs on the beach.", "A red kite above a green field.", "A bowl of soup on a wooden table."
    ]  # fmt: skip
    assert [row["seed_source"] for row in seeds] == ["open", "csv", "txt"]
    assert dict(drops.dropped) == {"seed_same_image": 1, "seed_duplicate": 1, "seed_too_short": 1, "seed_not_latin": 1}
    assert drops.rows_in == 7 and drops.rows_out == 3
    again, _ = load_seeds(args)
    assert [row["id"] for row in again] == [row["id"] for row in seeds]  # stable ids
    assert seeds[0]["id"].startswith("open-")


def test_seed_errors_name_the_file_and_column(tmp_path):
    jsonl = tmp_path / "seeds.jsonl"
    jsonl.write_text('{"text": "a cat"}\n')
    with pytest.raises(KeyError, match=r"seeds.jsonl:1: seed column 'caption' is missing"):
        load_seeds(_seed_args(_source(jsonl, column="caption")))
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(ValueError, match="empty"):
        load_seeds(_seed_args(_source(empty, column="text")))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_seeds(_seed_args(_source(tmp_path / "missing.jsonl", column="text")))


def test_label_seeds_from_packaged_imagenet_and_clip_templates(tmp_path):
    labels = tmp_path / "labels.txt"
    labels.write_text("pad thai\nramen\n")
    templates = tmp_path / "templates.txt"
    templates.write_text(
        "an image of a delicious {label}.\na photo of {label}, a type of food.\na close-up of a {label}.\n"
    )
    source = {"name": "food", "kind": "labels", "path": str(labels), "templates": str(templates),
              "templates_per_label": 2, "template_seed": 0}  # fmt: skip
    seeds, _ = load_seeds(_seed_args(source))
    assert len(seeds) == 4 and all(("pad thai" in s["seed"]) or ("ramen" in s["seed"]) for s in seeds)
    imagenet = SeedArguments(
        seed_sources=[
            {
                "name": "imagenet",
                "kind": "labels",
                "path": "pkg://imagenet",
                "templates": "pkg://clip-openai",
                "templates_per_label": 10,
                "template_seed": 0,
            }
        ]
    ).seed_sources[0]
    rendered = list(label_seeds(imagenet))
    assert len(rendered) == 10 * 998  # 1000 ImageNet classes, two names appear twice ("crane", "maillot")
    assert len(set(rendered[:10])) == 10 and all("tench" in seed for seed in rendered[:10])


def test_nested_config_errors():
    with pytest.raises(ValueError, match=r"seed_sources\[0\]: unknown key\(s\) \['colum'\]"):
        SeedArguments(seed_sources=[{"name": "a", "kind": "captions", "path": "x.jsonl", "colum": "text"}])
    with pytest.raises(ValueError, match="templates"):
        SeedArguments(seed_sources=[{"name": "a", "kind": "labels", "path": "pkg://imagenet"}])
    with pytest.raises(ValueError, match="min_turns"):
        TaskConfig(name="mc", weight=1, min_turns=3, max_turns=2, prompt="instructions_mc.txt")


def _caption_args(**kwargs):
    defaults = {"prompt": "detailed_caption.txt", "min_words": 5, "max_words": 30, "truncated": "drop"}
    return CaptionArguments(**{**defaults, **kwargs})


CAPTION = "A red bus waits at a busy corner while people cross the street in front of it."


def test_filter_reasons_each_row_counted_once():
    rows = [
        {"id": "none", "generation": None},
        {"id": "empty", "generation": "  "},
        {"id": "cut", "generation": CAPTION + " And then", "output_tokens": 32},
        {"id": "refusal", "generation": "I'm sorry, but I cannot describe images I cannot see at all."},
        {"id": "short", "generation": "A bus."},
        {"id": "long", "generation": " ".join(["word"] * 40)},
        {"id": "ok", "generation": "Detailed caption: " + CAPTION, "output_tokens": 20},
        {"id": "dup", "generation": CAPTION.upper()},
    ]
    drops = DropLog(stage="captions", rows_in=len(rows))
    kept = filter_captions(rows, _caption_args(), max_new_tokens=32, drops=drops)
    assert [row["id"] for row in kept] == ["ok"] and kept[0]["caption"] == CAPTION
    assert dict(drops.dropped) == {"no_generation": 1, "empty_generation": 1, "truncated": 1, "refusal": 1,
                                   "too_short": 1, "too_long": 1, "duplicate_caption": 1}  # fmt: skip
    assert drops.rows_out == 1


def test_truncated_trim_and_near_duplicates():
    assert trim_to_sentence("One sentence. Two sentences! And a cut") == "One sentence. Two sentences!"
    rows = [
        {"id": "a", "generation": CAPTION + " And the", "output_tokens": 32},
        {"id": "b", "generation": CAPTION.replace("busy", "crowded"), "output_tokens": 10},
        {
            "id": "c",
            "generation": "A bowl of ramen with an egg and green onions sits on a dark wooden table.",
            "output_tokens": 10,
        },
    ]
    drops = DropLog(stage="captions", rows_in=3)
    args = _caption_args(truncated="trim", near_duplicate_threshold=0.5, minhash_num_perm=128, minhash_ngram=2)
    kept = filter_captions(rows, args, max_new_tokens=32, drops=drops)
    assert [row["id"] for row in kept] == ["a", "c"] and kept[0]["caption"] == CAPTION
    assert dict(drops.dropped) == {"near_duplicate_caption": 1}


def test_text_statistics_values():
    stats = text_statistics(["a b a", "c d"])
    assert stats["rows"] == 2 and stats["min_words"] == 2 and stats["max_words"] == 3 and stats["mean_words"] == 2.5
    assert stats["type_token_ratio"] == 0.8  # 4 types / 5 tokens
    expected = -(0.4 * math.log2(0.4) + 3 * 0.2 * math.log2(0.2))
    assert stats["token_entropy_bits"] == pytest.approx(expected, abs=1e-4)


def test_messages_follow_the_data_contract():
    reply = {"questions": [
        {"question": "What is in the <image>?", "options": ["A bus", "A car", "A bike", "A train"], "answer": "A bus"},
        {"question": "What color?", "options": ["Red", "Blue", "Green", "Black"], "answer": "A"},
    ]}  # fmt: skip
    turns = parse_dialogue("mc", json.dumps(reply), 1, 8)
    messages = to_messages("mc", turns, "<image>", "Answer with the letter.")
    check_messages(messages, "<image>")
    assert (
        messages[0]["content"]
        == "<image>\nWhat is in the ?\nA. A bus\nB. A car\nC. A bike\nD. A train\nAnswer with the letter."
    )
    assert [m["content"] for m in messages if m["role"] == "assistant"] == ["A", "A"]
    with pytest.raises(ValueError, match="exactly one"):
        check_messages(
            [{"role": "user", "content": "<image> <image>"}, {"role": "assistant", "content": "x"}], "<image>"
        )


def test_task_assignment_exact_proportions_and_stable():
    tasks = [TaskConfig("mc", 171, 6, 8, "instructions_mc.txt"), TaskConfig("qa", 199, 6, 8, "instructions_qa.txt"),
             TaskConfig("reasoning", 100, 1, 2, "instructions_reasoning.txt")]  # fmt: skip
    ids = [f"id-{i}" for i in range(1200)]
    assignment = assign_tasks(ids, tasks, num_dialogues=470, seed=0)
    counts = {name: sum(task == name for task in assignment.values()) for name in ("mc", "qa", "reasoning")}
    assert counts == {"mc": 171, "qa": 199, "reasoning": 100}  # the paper's 171K / 199K / 100K, scaled
    assert len(assign_tasks(ids, tasks, num_dialogues=471, seed=0)) == 471  # largest remainder fills the last one
    assert assign_tasks(list(reversed(ids)), tasks, num_dialogues=470, seed=0) == assignment
    qa = {"name": "qa", "weight": 1, "min_turns": 1, "max_turns": 2, "prompt": "instructions_qa.txt"}
    args = InstructionArguments(captions_dataset="x", tasks=[qa])
    assert isinstance(args.tasks[0], TaskConfig)


def test_reply_prefill_is_continued_and_kept(tiny_lm_path):
    """A conversation ending with an assistant message: the prompt is the chat up to the generation prompt plus the
    prefill, and the reply starts with the prefill (the stage-2 task prefills rely on both)."""
    from unicorn_hf.synthesis.llms import BatchedTransformersLLM
    from unicorn_hf.synthesis.pipelines import PrefilledChatGeneration

    llm = BatchedTransformersLLM(model=tiny_lm_path, torch_dtype="float32", device="cpu", seed=0)
    llm.load()
    user = {"role": "user", "content": "Describe the image as JSON."}
    prefill = '{"conversations": [{"question": "'
    plain, prefilled = llm.generate(
        inputs=[[user], [user, {"role": "assistant", "content": prefill}]], max_new_tokens=4, temperature=0.0
    )
    assert prefilled["generations"][0].startswith(prefill)
    tokenizer = llm._pipeline.tokenizer
    expected_prompt = llm.prepare_input(input=[user]) + prefill
    assert prefilled["statistics"]["input_tokens"] == [
        len(tokenizer(expected_prompt, add_special_tokens=False)["input_ids"])
    ]
    assert plain["statistics"]["input_tokens"][0] < prefilled["statistics"]["input_tokens"][0]

    step = PrefilledChatGeneration(llm=llm)
    assert step.format_input({"messages": [user, {"role": "assistant", "content": prefill}]})[-1]["content"] == prefill
    with pytest.raises(Exception, match="last message must be from the user"):  # what precedes it is still checked
        step.format_input({"messages": [{"role": "assistant", "content": "x"}, {"role": "assistant", "content": "{"}]})
