"""The probe ladder (unicorn_hf/experiments/ladder.py) and concept-scale title text (pair_text's new scopes)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from unicorn_hf.experiments.ladder import (
    ImageRule,
    LadderItem,
    apply_image_rule,
    candidate_scores,
    caption_log_likelihoods,
    encoder_rung,
    ladder_items,
    null_candidate_scores,
    rung_inputs,
)
from unicorn_hf.experiments.likelihood import ranked_correct
from unicorn_hf.lit.pairs import Pair


EMBED_DIM = 8


def _pairs(titles: list[str], source: str = "emoji") -> list[Pair]:
    return [Pair(f"{source}/{i}", source, f"an emoji of {t}", lambda: None, t) for i, t in enumerate(titles)]


@pytest.fixture(scope="module")
def tiny_unicorn(tiny_lm_path):
    """A random-init Unicorn with mean-shift statistics and a 6-row text memory."""
    from unicorn_hf.training.builder import build_from_text_model, set_modality_transfer

    torch.manual_seed(0)
    settings = {"method": "mean_shift", "renormalize": True, "memory_size": 6, "memory_temperature": 0.01}
    model, processor = build_from_text_model(
        tiny_lm_path, embed_dim=EMBED_DIM, projector_type="mlp2x_gelu", num_image_tokens=2,
        modality_transfer=settings,
    )  # fmt: skip
    memory = torch.nn.functional.normalize(torch.randn(6, EMBED_DIM), dim=-1)
    set_modality_transfer(model, torch.randn(EMBED_DIM) * 0.3, torch.randn(EMBED_DIM) * 0.3, memory=memory)
    return model.eval(), processor


@pytest.fixture
def given_embeds(monkeypatch) -> list[torch.Tensor]:
    """What the model is given: a spy around the real `UnicornImageQA.generate_with_first_logits` records the
    embeddings [N, D] of every call, in order."""
    from unicorn_hf.evaluation.inference import UnicornImageQA

    given = []
    real_generate = UnicornImageQA.generate_with_first_logits

    def spy(self, embeds, *args, **kwargs):
        given.append(embeds.clone())
        return real_generate(self, embeds, *args, **kwargs)

    monkeypatch.setattr(UnicornImageQA, "generate_with_first_logits", spy)
    return given


def test_candidate_likelihood_is_the_pretraining_loss_of_the_title_whatever_the_batch(tiny_unicorn):
    """log p(title + EOS | image) equals -(the model's own training loss x scored tokens) of that row alone, and
    padding titles of other lengths into the same batch changes nothing."""
    from unicorn_hf.training.collator import UnicornDataCollator
    from unicorn_hf.training.data import IMAGE_EMBEDS, bos_ids, tokenize_caption

    model, processor = tiny_unicorn
    titles = ["cat", "a soft blue couch with three cushions", "grinning face"]
    embeds = torch.nn.functional.normalize(torch.randn(3, EMBED_DIM), dim=-1)
    batched = caption_log_likelihoods(model, processor, titles, embeds, batch_size=3)
    one_by_one = caption_log_likelihoods(model, processor, titles, embeds, batch_size=1)
    torch.testing.assert_close(batched, one_by_one, atol=1e-4, rtol=0)
    tokenizer = processor.tokenizer
    collate = UnicornDataCollator(tokenizer.pad_token_id, processor.image_token_id, model.config.num_image_tokens)
    for title, embed, score in zip(titles, embeds, batched, strict=True):
        row = tokenize_caption({"id": "0", "caption": title, IMAGE_EMBEDS: embed.tolist()}, tokenizer,
                               processor.image_token_id, 1, None, EMBED_DIM, bos_ids(tokenizer))  # fmt: skip
        batch = collate([row | {IMAGE_EMBEDS: embed.tolist()}])
        with torch.no_grad():
            loss = model(**batch).loss
        scored = int((batch["labels"][:, 1:] != -100).sum())
        assert scored == len(tokenizer(title, add_special_tokens=False)["input_ids"]) + 1  # title + EOS
        assert float(score) == pytest.approx(-float(loss) * scored, abs=1e-3)


def test_candidate_likelihood_of_a_chat_pretrained_checkpoint_is_its_training_loss_of_the_reply(tiny_unicorn):
    """With `caption_prompt`, a candidate is scored as the reply to it: -(training loss x scored tokens) of that
    chat-format pretraining row, which is not the plain-format score."""
    from unicorn_hf.training.collator import UnicornDataCollator
    from unicorn_hf.training.data import IMAGE_EMBEDS, tokenize_caption_turn

    model, processor = tiny_unicorn
    prompt = "<image>\nWhat is shown in the image?"
    titles = ["cat", "a soft blue couch with three cushions"]
    embeds = torch.nn.functional.normalize(torch.randn(2, EMBED_DIM), dim=-1)
    chat = caption_log_likelihoods(model, processor, titles, embeds, batch_size=2, caption_prompt=prompt)
    plain = caption_log_likelihoods(model, processor, titles, embeds, batch_size=2)
    assert not torch.allclose(chat, plain, atol=1e-3)
    tokenizer = processor.tokenizer
    collate = UnicornDataCollator(tokenizer.pad_token_id, processor.image_token_id, model.config.num_image_tokens)
    for title, embed, score in zip(titles, embeds, chat, strict=True):
        row = tokenize_caption_turn(
            {"id": "0", "caption": title, IMAGE_EMBEDS: embed.tolist()}, prompt, tokenizer=tokenizer,
            image_token=processor.image_token, image_token_id=processor.image_token_id, num_image_tokens=1,
            max_length=None, embed_dim=EMBED_DIM, chat_template=processor.chat_template,
        )  # fmt: skip
        batch = collate([row | {IMAGE_EMBEDS: embed.tolist()}])
        with torch.no_grad():
            loss = model(**batch).loss
        scored = int((batch["labels"][:, 1:] != -100).sum())
        assert float(score) == pytest.approx(-float(loss) * scored, abs=1e-3)


def test_the_pretraining_format_is_read_from_the_checkpoint_record_and_its_history():
    from unicorn_hf.training.metadata import pretraining_caption_prompt

    prompt = "<image>\nWhat is shown in the image?"
    pretrain = {"stage": "pretrain", "dataset": {"caption_prompt": prompt}}
    assert pretraining_caption_prompt(pretrain) == prompt
    assert pretraining_caption_prompt({"stage": "sft", "dataset": {}, "previous_stages": [pretrain]}) == prompt
    assert pretraining_caption_prompt({"stage": "pretrain", "dataset": {}}) is None  # a record from before the field
    assert pretraining_caption_prompt(None) is None  # no record: the plain format


def test_null_scores_equal_per_item_scores_of_the_same_vector(tiny_unicorn):
    model, processor = tiny_unicorn
    items = [LadderItem("a", "emoji", "cat", ("cat", "dog", "bus"), 0),
             LadderItem("b", "emoji", "dog", ("bus", "dog", "owl"), 1)]  # fmt: skip
    null = torch.nn.functional.normalize(torch.randn(EMBED_DIM), dim=0)
    expected = candidate_scores(model, processor, null.expand(2, -1), items, batch_size=4)
    torch.testing.assert_close(null_candidate_scores(model, processor, null, items, 4), expected, atol=1e-4, rtol=0)


def test_ranked_correct_gives_full_credit_to_a_winner_and_chance_to_a_constant():
    scores = torch.tensor([[0.0, 2.0, 1.0, -1.0], [3.0, 3.0, 0.0, 0.0], [5.0, 5.0, 5.0, 5.0], [1.0, 0.0, 0.0, 0.0]])
    credit = ranked_correct(scores, [1, 0, 2, 3])
    np.testing.assert_allclose(credit, [1.0, 0.5, 0.25, 0.0])
    # float32 rounding between batches of other lengths (~1e-5 nats) is a tie, not a win
    rounding = torch.tensor([[1e-5, 0.0, -2e-5, 3e-6], [0.0, 0.0, 0.0, 0.01]])
    np.testing.assert_allclose(ranked_correct(rounding, [2, 0]), [0.25, 0.0])


def test_ladder_items_hold_the_right_title_among_same_source_distractors():
    pairs = _pairs(["cat", "dog", "owl", "bus", "tree"]) + _pairs(["sun", "moon", "star", "cloud"], "openclipart")
    items = ladder_items(pairs, num_candidates=4, text_form="title", seed=3)
    assert items == ladder_items(pairs, num_candidates=4, text_form="title", seed=3)  # seeded
    for pair, item in zip(pairs, items, strict=True):
        assert item.candidates[item.answer_index] == pair.title == item.text
        assert len(set(item.candidates)) == 4
        assert set(item.candidates) <= {p.title for p in pairs if p.source == pair.source}
    assert ladder_items(pairs, 4, "caption", 3)[0].text == "an emoji of cat"
    with pytest.raises(ValueError, match="text_form"):
        ladder_items(pairs, 4, "name", 3)


def test_image_rules_follow_the_checkpoint_and_leave_its_settings_unchanged(tiny_unicorn):
    from unicorn_hf.modeling.modality_transfer import project_onto_memory

    model, _ = tiny_unicorn
    before = dict(model.config.modality_transfer)
    raw = torch.nn.functional.normalize(torch.randn(5, EMBED_DIM), dim=-1)
    stats = model.model.modality_statistics
    eval_mean = apply_image_rule(model, raw, ImageRule("eval", image_mean="eval"))
    torch.testing.assert_close(eval_mean, torch.nn.functional.normalize(raw - raw.mean(0), dim=-1))
    stored = apply_image_rule(model, raw, ImageRule("stored", image_mean="image"))
    torch.testing.assert_close(stored, torch.nn.functional.normalize(raw - stats.image_mean, dim=-1))
    projected = apply_image_rule(model, raw, ImageRule("memory", project_onto_memory=True))
    expected = model.transfer_texts(project_onto_memory(raw, stats.memory, 0.01))
    torch.testing.assert_close(projected, expected)
    assert model.config.modality_transfer == before
    inputs = rung_inputs(model, raw, raw, [ImageRule("stored"), ImageRule("eval", image_mean="eval")], seed=0)
    assert set(inputs) == {"text", "image/stored", "image/eval", "blind/shuffled", "blind/zero", "blind/null"}
    assert sorted(inputs["blind/shuffled"].tolist()) == sorted(inputs["image/stored"].tolist())
    assert not inputs["blind/zero"].any()
    torch.testing.assert_close(inputs["blind/null"][3], inputs["image/stored"].mean(0))


def test_encoder_rung_ranks_by_cosine_with_the_captioned_candidates():
    """A text encoder that maps each prompt to a fixed direction: an image on the right title's direction is read."""
    vocabulary = ["an emoji of cat", "an emoji of dog", "an emoji of owl", "an emoji of bus"]
    basis = torch.eye(4)

    def encode_text(texts):
        return torch.stack([basis[vocabulary.index(text)] for text in texts])

    items = [LadderItem("a", "emoji", "cat", ("dog", "cat", "owl", "bus"), 1),
             LadderItem("b", "emoji", "owl", ("owl", "cat", "dog", "bus"), 0)]  # fmt: skip
    images = torch.stack([basis[0], basis[1]])  # the first shows a cat, the second a dog: wrong for item b
    credit = encoder_rung(images, items, encode_text, {"emoji": "an emoji of {title}"})
    assert credit == [1.0, 0.0]


def test_title_text_leaves_out_held_out_titles_and_counts_them(tmp_path, monkeypatch):
    from unicorn_hf.synthesis import pair_text
    from unicorn_hf.utils.hub import load_dataset_folder

    pairs = _pairs(["cat", "dog", "owl", "bus", "tree", "Cat", "sun"])
    held_out = ["emoji/0", "emoji/1"]  # cat and dog; "Cat" (another pair) shares a held-out title
    monkeypatch.setattr(pair_text, "trained_encoder_pairs", lambda config, folder: (pairs, held_out))
    args = pair_text.PairTextArguments(
        captions_path=None, instructions_path=None, encoder_config="unused.yaml", encoder_dir="unused",
        num_pairs=None, num_options=3, mc_question="What is shown?", mc_suffix="Letter.",
        yes_no_question="Is there {title}?", yes_no_suffix="One word.", dialogues_per_pair=1, image_token="<image>",
        seed=0, output_dir=str(tmp_path / "text"), caption_form="title",
    )  # fmt: skip
    folder = pair_text.run_pair_text(args)
    captions = sorted(load_dataset_folder(folder, "captions")["caption"])
    assert captions == ["bus", "owl", "sun", "tree"]
    record = json.loads((folder / "pair_text.json").read_text())
    assert record["dropped"] == {"title_of_a_held_out_pair": 1} and record["caption_form"] == "title"
    dialogues = load_dataset_folder(folder, "instructions")
    assert sorted(dialogues["caption"]) == sorted(2 * captions)  # an mc and a yes/no dialogue per caption, same text
    with pytest.raises(ValueError, match="pair_scope"):
        pair_text.PairTextArguments(**{**vars(args), "pair_scope": "everything"})


def test_summary_pairs_every_rung_with_the_blind_controls_and_rung_b_and_the_quickstart_prints_it(tmp_path):
    from PIL import Image

    from unicorn_hf.experiments.ladder_report import ladder_table, plot_ladder
    from unicorn_hf.experiments.ladder_run import summarize
    from unicorn_hf.stages.report import _numbers

    n = 40
    credit = {
        "encoder": {"raw": [1.0] * n},
        "text": {"raw": [1.0] * n, "calibrated": [1.0] * n},
        "image/eval_mean": {"raw": [0.0] * (n // 2) + [1.0] * (n // 2), "calibrated": [1.0, 0.0] * (n // 2)},
        "blind/shuffled": {"raw": [0.25] * n, "calibrated": [0.25] * n},
        "blind/zero": {"raw": [0.0] * n, "calibrated": [0.25] * n},
    }
    summary = summarize(credit, resamples=200, confidence=0.95, seed=0)
    image = summary["image/eval_mean"]["calibrated"]
    assert image["accuracy"]["accuracy"] == 0.5
    assert image["minus_blind/shuffled"]["difference"] == pytest.approx(0.25)
    assert image["minus_text"]["difference"] == pytest.approx(-0.5)
    assert "minus_text" not in summary["text"]["calibrated"] and "calibrated" not in summary["encoder"]
    table = ladder_table(summary, chance=0.25)
    assert "| image/eval_mean | 50.0 [" in table and "| +25.0 [" in table and "Chance: 25.0%" in table
    numbers = _numbers({"ladder": {"summary": summary}})
    assert "text 100.0%" in numbers and "image/eval_mean 50.0% (+25.0 [" in numbers
    plot_ladder(summary, 0.25, tmp_path / "ladder.png")
    assert Image.open(tmp_path / "ladder.png").format == "PNG"


def test_concept_bank_labels_join_the_captions_but_never_a_held_out_title(tmp_path, monkeypatch):
    from unicorn_hf.synthesis import concepts, pair_text
    from unicorn_hf.utils.drops import DropLog
    from unicorn_hf.utils.hub import load_dataset_folder

    pairs = _pairs(["cat", "dog", "owl", "bus", "tree"])
    bank = [concepts.Concept(f"n0{i}", (name,), "a gloss") for i, name in enumerate(["Dog", "crane", "owl", "crane"])]
    monkeypatch.setattr(pair_text, "trained_encoder_pairs", lambda config, folder: (pairs, ["emoji/1"]))
    monkeypatch.setattr(pair_text, "concept_bank", lambda path: (bank, DropLog(stage="concepts")))
    args = pair_text.PairTextArguments(
        captions_path=None, instructions_path=None, encoder_config="unused.yaml", encoder_dir="unused",
        num_pairs=None, num_options=3, mc_question="What is shown?", mc_suffix="Letter.",
        yes_no_question="Is there {title}?", yes_no_suffix="One word.", dialogues_per_pair=1, image_token="<image>",
        seed=0, output_dir=str(tmp_path / "text"), caption_form="title", concept_bank="pkg://imagenet21k",
        concept_label_format="lemma",
    )  # fmt: skip
    folder = pair_text.run_pair_text(args)
    captions = load_dataset_folder(folder, "captions")
    assert sorted(captions["caption"]) == ["bus", "cat", "crane", "owl", "tree"]
    assert len(load_dataset_folder(folder, "instructions")) == 2 * 4  # mc + yes/no per pair; concepts: no dialogue
    record = json.loads((folder / "pair_text.json").read_text())
    assert record["concepts"] == 1
    assert record["dropped"] == {"title_of_a_held_out_pair": 0, "concept_is_a_held_out_title": 1,
                                 "concept_label_repeated": 2}  # fmt: skip
    with pytest.raises(ValueError, match="go together"):
        pair_text.PairTextArguments(**{**vars(args), "concept_label_format": None})


def test_an_inference_only_arm_switches_the_checkpoints_rule_for_scoring_only(tiny_unicorn, tmp_path, given_embeds):
    """`score_checkpoint(transfer_overrides=...)`: memory projection on a mean-shift checkpoint is what the model is
    given (the ladder's rule, recorded by a spy around the real generate), a bad override names its field, and the
    folder on disk is untouched."""
    from unicorn_hf.experiments.config import EvaluationMode
    from unicorn_hf.experiments.questions import Question
    from unicorn_hf.experiments.scoring import score_checkpoint

    model, processor = tiny_unicorn
    model.save_pretrained(tmp_path / "ckpt")
    processor.save_pretrained(tmp_path / "ckpt")
    questions = [Question(f"p{i}", "yes_no", "Is there a cat?\nOne word.", "yes", subject="cat") for i in range(3)]
    raw = torch.nn.functional.normalize(torch.randn(3, EMBED_DIM), dim=-1)
    modes = [EvaluationMode("sighted", mean="image")]
    score_checkpoint(str(tmp_path / "ckpt"), questions, raw, modes, 3, 1, seed=0)
    score_checkpoint(str(tmp_path / "ckpt"), questions, raw, modes, 3, 1, seed=0,
                     transfer_overrides={"project_images_onto_memory": True})  # fmt: skip
    stored, memory = ImageRule("stored", image_mean="image"), ImageRule("memory", project_onto_memory=True)
    torch.testing.assert_close(given_embeds[0], apply_image_rule(model, raw, stored))
    torch.testing.assert_close(given_embeds[1], apply_image_rule(model, raw, memory))
    assert not torch.allclose(given_embeds[0], given_embeds[1])
    with pytest.raises(ValueError, match="unknown keys"):
        score_checkpoint(str(tmp_path / "ckpt"), questions, raw, modes, 3, 1, seed=0,
                         transfer_overrides={"project_onto_memory": True})  # fmt: skip
    saved = json.loads((tmp_path / "ckpt" / "config.json").read_text())["modality_transfer"]
    assert saved["project_images_onto_memory"] is False


def test_sft_rungs_ask_every_question_with_its_pairs_input_and_split_credit_by_kind(tiny_unicorn, given_embeds):
    """`question_rungs`: each question gets the row of its own pair from each rung's inputs (a spy around the real
    generate records them), credit comes back per kind in question order, and a question about a pair with no
    input row is refused by name."""
    from unicorn_hf.evaluation.inference import UnicornImageQA
    from unicorn_hf.experiments.ladder import question_rungs
    from unicorn_hf.experiments.questions import QuestionTemplates, evaluation_questions

    model, processor = tiny_unicorn
    qa = UnicornImageQA(model, processor, encoder=None)
    pairs = _pairs(["cat", "dog", "owl", "bus", "tree", "car"])
    templates = QuestionTemplates("What is shown?", "Letter.", "Is there {title}?", "One word.")
    questions = evaluation_questions(pairs, 4, templates, seed=0)
    pair_ids = [pair.id for pair in pairs]
    inputs = {"text": torch.randn(6, EMBED_DIM), "blind/zero": torch.zeros(6, EMBED_DIM)}
    credit, chosen = question_rungs(qa, inputs, pair_ids, questions, batch_size=4, max_new_tokens=2)
    assert set(credit) == set(inputs) == set(chosen)
    for rung, kinds in chosen.items():  # the chosen answers agree with the credit
        mc = [q for q in questions if q.kind == "mc"]
        assert [float(a == q.answer) for a, q in zip(kinds["mc"], mc, strict=True)] == credit[rung]["mc"]
        assert set(kinds["yes_no"]) <= {"yes", "no"} and len(kinds["yes_no"]) == 6
    for values in credit.values():
        assert {kind: len(v) for kind, v in values.items()} == {
            "mc": 6, "mc_generation": 6, "yes_no": 6, "yes_no_generation": 6,
        }  # fmt: skip
        assert all(value in (0.0, 1.0) for v in values.values() for value in v)
    rows = [pair_ids.index(q.pair_id) for q in questions]
    torch.testing.assert_close(given_embeds[0], inputs["text"][rows])
    assert sum(q.answer == "yes" for q in questions if q.kind == "yes_no") == 3  # balanced
    with pytest.raises(KeyError, match="no input row"):
        question_rungs(qa, {"text": inputs["text"][:5]}, pair_ids[:5], questions, batch_size=4, max_new_tokens=1)


def test_the_sft_ladder_table_and_plot_show_both_question_kinds_against_their_own_chance(tmp_path):
    from PIL import Image

    from unicorn_hf.experiments.ladder_report import answer_concentration, ladder_table, plot_ladder
    from unicorn_hf.experiments.ladder_run import summarize

    n = 20
    half = [1.0, 0.0] * (n // 2)
    credit = {
        "encoder": {"mc": [1.0] * n, "yes_no": half},
        "text": {"mc": half, "mc_generation": half, "yes_no": [1.0] * n, "yes_no_generation": [1.0] * n},
        "blind/shuffled": {"mc": [0.0] * n, "mc_generation": [0.0] * n, "yes_no": half, "yes_no_generation": half},
    }
    summary = summarize(credit, resamples=200, confidence=0.95, seed=0)
    assert summary["text"]["mc"]["minus_blind/shuffled"]["difference"] == pytest.approx(0.5)
    assert summary["encoder"]["mc"]["minus_blind/shuffled"]["difference"] == pytest.approx(1.0)
    assert "mc_generation" not in summary["encoder"]  # the encoder answers by cosine only
    probe = {"accuracy_own": 0.23, "accuracy_shuffled": 0.22, "accuracy_zero": 0.225, "chance": 0.25, "rows": 200}
    chosen = {"text": {"mc": ["D"] * 19 + ["A"], "yes_no": ["yes"] * n}}
    concentration = answer_concentration(chosen)
    assert concentration["text"] == {"mc": {"answer": "D", "share": 0.95}, "yes_no": {"answer": "yes", "share": 1.0}}
    table = ladder_table(summary, {"mc": 0.25, "yes_no": 0.5}, training_dialogues=probe, concentration=concentration)
    assert "Most frequent first-token answer per rung: text mc D 95%, yes_no yes 100%." in table
    header = table.splitlines()[0]
    assert header.startswith("| rung | mc | mc - shuffled |") and "| yes/no generated |" in header
    text_row = next(line for line in table.splitlines() if line.startswith("| text |"))
    assert text_row.split(" | ")[1].startswith("50.0 [") and "| +50.0 [" in text_row
    assert "Chance: mc 25.0%, yes/no 50.0%." in table and "The encoder row answers by cosine" in table
    assert "Training dialogues (first turn, 200 rows)" in table and "23.0% / 22.0% / 22.5%; chance 25.0%." in table
    from unicorn_hf.stages.report import _numbers

    numbers = _numbers({"ladder": {"summary": summary}})
    assert "text mc 50.0% (+50.0 [" in numbers and "text yes_no 100.0%" in numbers
    plot_ladder(summary, {"mc": 0.25, "yes_no": 0.5}, tmp_path / "ladder.png")
    assert Image.open(tmp_path / "ladder.png").size[0] > Image.open(tmp_path / "ladder.png").size[1]  # 2 panels


def test_ladder_arguments_are_checked_and_command_line_rules_read_as_json():
    from unicorn_hf.experiments.ladder_run import LadderArguments

    base = {
        "model_name_or_path": "m", "encoder_config": "e.yaml", "encoder_dir": "e", "num_images": 4,
        "num_candidates": 4, "text_form": "title", "image_rules": [{"name": "stored_mean"}], "zero_shot_prompts": {},
        "batch_size": 2, "bootstrap_resamples": 10, "confidence": 0.95, "seed": 0, "output_dir": "o",
    }  # fmt: skip
    assert LadderArguments(**base).scorings == ("raw", "calibrated")
    sft = LadderArguments(**base, questions_path="t", max_new_tokens=4)
    assert sft.scorings == ("mc", "mc_generation", "yes_no", "yes_no_generation")
    with pytest.raises(ValueError, match="max_new_tokens"):
        LadderArguments(**base, questions_path="t")
    with pytest.raises(ValueError, match="questions_path"):
        LadderArguments(**base, training_probe_rows=5)
    sft_base = {**base, "questions_path": "t", "max_new_tokens": 4}
    for half_set in ({"training_probe_rows": 5}, {"training_dialogues_path": "d"}):
        with pytest.raises(ValueError, match="go together"):
            LadderArguments(**sft_base, **half_set)
    # on the command line a rule arrives as JSON text in `name`: it is read, not scored as a rule of that name
    given = LadderArguments(**{**base, "image_rules": [ImageRule('[{"name": "m", "project_onto_memory": true}]'),
                                                       ImageRule('{"name": "e", "image_mean": "eval"}')]})  # fmt: skip
    assert given.image_rules == [ImageRule("m", project_onto_memory=True), ImageRule("e", image_mean="eval")]
    with pytest.raises(ValueError, match="does not parse"):
        LadderArguments(**{**base, "image_rules": [ImageRule("{name: m}")]})
    with pytest.raises(ValueError, match="set `questions_path` too"):
        LadderArguments(**base, title_in_prompt="The image shows {title}.")  # a pretraining ladder has no questions
    with pytest.raises(ValueError, match=r"has no \{title\} slot"):
        LadderArguments(**sft_base, title_in_prompt="The image shows it.")
    with pytest.raises(ValueError, match=r"the only slot allowed is \{title\}"):
        LadderArguments(**sft_base, title_in_prompt="{title} in {place}")
    assert LadderArguments(**sft_base, title_in_prompt="").title_in_prompt is None  # off from the command line


def test_the_ladders_inputs_are_checked_before_any_model_loads(tmp_path, monkeypatch):
    """A missing question record, a wrong option count or a missing training-dialogue folder is refused by name
    before the held-out pairs, the encoder or the checkpoint are read (the helper's trial waited 2-8 min for these)."""
    from unicorn_hf.experiments import ladder_run

    def no_work(*args, **kwargs):
        raise AssertionError("reached model work before the inputs were checked")

    monkeypatch.setattr(ladder_run, "held_out_pairs", no_work)
    base = {
        "model_name_or_path": "m", "encoder_config": "e.yaml", "encoder_dir": "e", "num_images": 4,
        "num_candidates": 4, "text_form": "title", "image_rules": [{"name": "stored_mean"}], "zero_shot_prompts": {},
        "batch_size": 2, "bootstrap_resamples": 10, "confidence": 0.95, "seed": 0, "output_dir": str(tmp_path),
        "questions_path": str(tmp_path / "text"), "max_new_tokens": 4,
    }  # fmt: skip
    with pytest.raises(ValueError, match="update_model_card needs a local checkpoint folder; m is not one"):
        ladder_run.run_ladder(ladder_run.LadderArguments(**base, update_model_card=True))
    with pytest.raises(FileNotFoundError, match=r"questions_path: .*pair_text.json is missing"):
        ladder_run.run_ladder(ladder_run.LadderArguments(**base))
    (tmp_path / "text").mkdir()
    (tmp_path / "text" / "pair_text.json").write_text(json.dumps({"num_options": 3, "templates": {}}))
    with pytest.raises(ValueError, match="3-way questions, `num_candidates` is 4"):
        ladder_run.run_ladder(ladder_run.LadderArguments(**base))
    (tmp_path / "text" / "pair_text.json").write_text(json.dumps({"num_options": 4, "templates": {}}))
    missing = {"training_dialogues_path": str(tmp_path / "nowhere"), "training_probe_rows": 5}
    with pytest.raises(FileNotFoundError, match=r"training_dialogues_path=.*no such folder"):
        ladder_run.run_ladder(ladder_run.LadderArguments(**base, **missing))
    with pytest.raises(AssertionError, match="reached model work"):  # all inputs good: the run goes on to the pairs
        ladder_run.run_ladder(ladder_run.LadderArguments(**base))


def test_the_training_dialogue_probe_takes_mc_and_yes_no_first_turns_and_counts_the_others(tiny_unicorn, tmp_path):
    """A stage-3 folder mixes templated mc dialogues with stage-2 QA (the tiny recipe's): the probe passes over the
    QA rows and counts them (the trimmed quickstart's SFT ladder crashed on them with "num_options ... got 0"), and a
    folder with no lettered mc row is refused by name."""
    from datasets import Dataset

    from unicorn_hf.evaluation.inference import UnicornImageQA
    from unicorn_hf.experiments.ladder_report import training_dialogue_line
    from unicorn_hf.experiments.probes import lettered_mc_question, training_dialogue_probe, yes_no_question_of

    model, processor = tiny_unicorn
    qa = UnicornImageQA(model, processor, encoder=None)
    mc = "<image>\nWhat is shown?\nA. cat\nB. dog\nC. owl\nD. bus\nLetter."
    rows = [
        {"id": "qa-0", "messages": [{"role": "user", "content": "<image>\nWhat colour is it?"},
                                    {"role": "assistant", "content": "Red."}]},
        {"id": "mc-1", "messages": [{"role": "user", "content": mc}, {"role": "assistant", "content": "C"}]},
        {"id": "mc-2", "messages": [{"role": "user", "content": mc}, {"role": "assistant", "content": "A"}]},
        {"id": "mc-3", "messages": [{"role": "user", "content": mc}, {"role": "assistant", "content": "B"}]},
        {"id": "yn-4", "messages": [{"role": "user", "content": "<image>\nIs there a cat?\nOne word."},
                                    {"role": "assistant", "content": "No"}]},
    ]  # fmt: skip
    question = lettered_mc_question(rows[1], "<image>", 4)
    assert question.options == ("cat", "dog", "owl", "bus") and question.answer == "C"
    assert question.text.startswith("What is shown?")
    assert lettered_mc_question(rows[0], "<image>", 4) is None and lettered_mc_question(rows[1], "<image>", 3) is None

    def write(folder, chosen):
        (folder / "instructions").mkdir(parents=True)
        (folder / "README.md").write_text("# rows\n")
        embeds = [[0.1 * i] * EMBED_DIM for i in range(len(chosen))]
        Dataset.from_list([{**row, "image_embeds": e} for row, e in zip(chosen, embeds, strict=True)]).to_parquet(
            str(folder / "instructions" / "train-00000.parquet")
        )
        return str(folder)

    yes_no = yes_no_question_of(rows[4], "<image>")
    assert (yes_no.kind, yes_no.text, yes_no.answer) == ("yes_no", "Is there a cat?\nOne word.", "no")
    assert yes_no_question_of(rows[0], "<image>") is None and yes_no_question_of(rows[1], "<image>") is None

    probe = training_dialogue_probe(qa, write(tmp_path / "mixed", rows), 2, 4, 0, 4)
    assert probe["rows"] == 2 and probe["rows_not_lettered_mc"] == 2 and probe["chance"] == 0.25
    assert all(0.0 <= probe[f"accuracy_{name}"] <= 1.0 for name in ("own", "shuffled", "zero"))
    # the one yes/no row answered "No": right iff the first token prefers "No" over "Yes" under that control
    assert probe["yes_no"]["rows"] == 1 and probe["yes_no"]["chance"] == 0.5
    assert all(probe["yes_no"][f"accuracy_{name}"] in (0.0, 1.0) for name in ("own", "shuffled", "zero"))
    assert "Yes/no first turns (1 rows)" in training_dialogue_line(probe)
    with pytest.raises(ValueError, match="no training dialogue opens with a lettered 4-way question"):
        training_dialogue_probe(qa, write(tmp_path / "qa_only", rows[:1]), 2, 4, 0, 4)


def test_a_cloze_reply_is_scored_as_the_sft_loss_of_that_reply_whatever_the_batch(tiny_unicorn):
    """log p(reply + end-of-turn | chat prompt with the image) equals -(the model's own SFT loss x scored tokens) of
    the one-turn dialogue alone, tokenized as training tokenizes it; padding other replies into the batch changes
    nothing."""
    from unicorn_hf.evaluation.inference import UnicornImageQA
    from unicorn_hf.experiments.cloze import reply_log_likelihoods
    from unicorn_hf.training.collator import UnicornDataCollator
    from unicorn_hf.training.data import IMAGE_EMBEDS, tokenize_dialogue

    model, processor = tiny_unicorn
    qa = UnicornImageQA(model, processor, encoder=None)
    replies = ["cat", "a soft blue couch with three cushions", "grinning face"]
    embeds = torch.nn.functional.normalize(torch.randn(3, EMBED_DIM), dim=-1)
    batched = reply_log_likelihoods(qa, ["What is shown?"] * 3, replies, embeds, batch_size=3)
    one_by_one = reply_log_likelihoods(qa, ["What is shown?"] * 3, replies, embeds, batch_size=1)
    torch.testing.assert_close(batched, one_by_one, atol=1e-4, rtol=0)
    collate = UnicornDataCollator(processor.tokenizer.pad_token_id, processor.image_token_id,
                                  model.config.num_image_tokens)  # fmt: skip
    for reply, embed, score in zip(replies, embeds, batched, strict=True):
        messages = [{"role": "user", "content": f"{processor.image_token}\nWhat is shown?"},
                    {"role": "assistant", "content": reply}]  # fmt: skip
        row = tokenize_dialogue({"id": "0", "messages": messages, IMAGE_EMBEDS: embed.tolist()}, processor.tokenizer,
                                processor.image_token, processor.image_token_id, 1, None, EMBED_DIM,
                                processor.chat_template)  # fmt: skip
        batch = collate([row | {IMAGE_EMBEDS: embed.tolist()}])
        with torch.no_grad():
            loss = model(**batch).loss
        scored = int((batch["labels"][:, 1:] != -100).sum())
        assert scored > len(processor.tokenizer(reply, add_special_tokens=False)["input_ids"])  # + end of turn
        assert float(score) == pytest.approx(-float(loss) * scored, abs=1e-3)
    with pytest.raises(ValueError, match="makes no SFT row: empty_assistant_turn"):
        reply_log_likelihoods(qa, ["What is shown?"], [" "], embeds[:1], batch_size=1)


def test_cloze_credit_ranks_the_options_as_replies_and_a_constant_input_calibrates_to_chance(tiny_unicorn):
    """Raw credit follows the highest reply score (checked against `reply_log_likelihoods` directly); calibrated
    credit of one vector for every question is chance exactly (the input is its own centroid); yes/no is refused."""
    from unicorn_hf.evaluation.inference import UnicornImageQA
    from unicorn_hf.experiments.cloze import cloze_credit, reply_log_likelihoods
    from unicorn_hf.experiments.questions import QuestionTemplates, evaluation_questions

    model, processor = tiny_unicorn
    qa = UnicornImageQA(model, processor, encoder=None)
    pairs = _pairs(["cat", "dog", "owl", "bus", "tree", "car"])
    templates = QuestionTemplates("What is shown?", "Letter.", "Is there {title}?", "One word.")
    questions = evaluation_questions(pairs, 4, templates, seed=0)
    mc = [q for q in questions if q.kind == "mc"]
    embeds = torch.nn.functional.normalize(torch.randn(len(mc), EMBED_DIM), dim=-1)
    credit = cloze_credit(qa, mc, embeds, "What is shown?", batch_size=8)
    assert set(credit) == {"mc_cloze", "mc_cloze_calibrated"} and len(credit["mc_cloze"]) == len(mc)
    for question, embed, value in zip(mc, embeds, credit["mc_cloze"], strict=True):
        scores = reply_log_likelihoods(qa, ["What is shown?"] * 4, list(question.options), embed.expand(4, -1), 4)
        best = question.options[int(scores.argmax())]
        assert value == float(best == question.options["ABCD".index(question.answer)])
    constant = cloze_credit(qa, mc, embeds[:1].expand(len(mc), -1), "What is shown?", batch_size=8)
    assert constant["mc_cloze_calibrated"] == [0.25] * len(mc)
    with pytest.raises(ValueError, match="multiple-choice questions only"):
        cloze_credit(qa, questions, torch.zeros(len(questions), EMBED_DIM), "What is shown?", batch_size=8)


def test_sft_rungs_and_the_training_probe_add_the_cloze_formulation_when_asked(tiny_unicorn, tmp_path):
    from datasets import Dataset

    from unicorn_hf.evaluation.inference import UnicornImageQA
    from unicorn_hf.experiments.ladder import question_rungs
    from unicorn_hf.experiments.ladder_report import ladder_table, training_dialogue_line
    from unicorn_hf.experiments.ladder_run import summarize
    from unicorn_hf.experiments.probes import training_dialogue_probe
    from unicorn_hf.experiments.questions import QuestionTemplates, evaluation_questions

    model, processor = tiny_unicorn
    qa = UnicornImageQA(model, processor, encoder=None)
    pairs = _pairs(["cat", "dog", "owl", "bus", "tree", "car"])
    templates = QuestionTemplates("What is shown?", "Letter.", "Is there {title}?", "One word.")
    questions = evaluation_questions(pairs, 4, templates, seed=0)
    inputs = {"text": torch.randn(6, EMBED_DIM), "blind/zero": torch.zeros(6, EMBED_DIM)}
    credit, _ = question_rungs(qa, inputs, [p.id for p in pairs], questions, 4, 1, cloze_question="What is shown?")
    assert {kind: len(v) for kind, v in credit["text"].items()} == {
        "mc": 6, "mc_generation": 6, "yes_no": 6, "yes_no_generation": 6, "mc_cloze": 6, "mc_cloze_calibrated": 6,
    }  # fmt: skip
    assert credit["blind/zero"]["mc_cloze_calibrated"] == [0.25] * 6  # a constant input is its own null
    table = ladder_table(summarize(credit, 50, 0.95, 0), {"mc": 0.25, "yes_no": 0.5})
    assert "| mc cloze calibrated - zero |" in table.splitlines()[0]
    without = ladder_table(summarize({k: {"mc": v["mc"]} for k, v in credit.items()}, 50, 0.95, 0), {"mc": 0.25})
    assert "cloze" not in without and "yes/no" not in without.splitlines()[0]  # columns no rung has are left out

    mc = "<image>\nWhat is shown?\nA. cat\nB. dog\nC. owl\nD. bus\nLetter."
    rows = [{"id": f"mc-{i}", "messages": [{"role": "user", "content": mc}, {"role": "assistant", "content": a}],
             "image_embeds": [0.1 * i] * EMBED_DIM} for i, a in enumerate("CAB")]  # fmt: skip
    (tmp_path / "instructions").mkdir()
    (tmp_path / "README.md").write_text("# rows\n")
    Dataset.from_list(rows).to_parquet(str(tmp_path / "instructions" / "train-00000.parquet"))
    probe = training_dialogue_probe(qa, str(tmp_path), 3, 4, 0, 4, cloze_question="What is shown?")
    for scoring in ("", "_cloze", "_cloze_calibrated"):
        assert all(0.0 <= probe[f"accuracy{scoring}_{name}"] <= 1.0 for name in ("own", "shuffled", "zero"))
    assert probe["accuracy_cloze_calibrated_zero"] == 0.25
    line = training_dialogue_line(probe)
    assert "letter " in line and "; cloze " in line and "; cloze calibrated " in line and "chance 25.0%" in line


def test_the_ladder_writes_the_checkpoints_card_with_its_table_and_into_the_checkpoint_only_when_asked(
    tiny_unicorn, tmp_path
):
    from unicorn_hf.experiments.ladder_report import ladder_table
    from unicorn_hf.experiments.ladder_run import LadderArguments, summarize, write_ladder_card

    model, processor = tiny_unicorn
    checkpoint = tmp_path / "pretrain"
    model.save_pretrained(checkpoint)
    processor.save_pretrained(checkpoint)
    (checkpoint / "README.md").write_text("the training card\n")
    n = 20
    credit = {"text": {"raw": [1.0, 0.0] * (n // 2), "calibrated": [1.0] * n},
              "blind/shuffled": {"raw": [0.25] * n, "calibrated": [0.25] * n}}  # fmt: skip
    ladder = {"summary": summarize(credit, resamples=100, confidence=0.95, seed=0), "chance": 0.25,
              "num_items": n, "scorings": ["raw", "calibrated"], "arguments": {"confidence": 0.95}}  # fmt: skip
    args = LadderArguments(
        model_name_or_path=str(checkpoint), encoder_config="unused.yaml", encoder_dir="unused", num_images=n,
        num_candidates=4, text_form="title", image_rules=[{"name": "stored_mean"}], zero_shot_prompts={}, batch_size=8,
        bootstrap_resamples=100, confidence=0.95, seed=0, output_dir=str(tmp_path / "ladder"),
    )  # fmt: skip
    card = write_ladder_card(args, ladder)
    assert card == tmp_path / "ladder" / "model_card" / "README.md"
    text = card.read_text()
    assert "### Where the image is lost: the probe ladder" in text and "The same 20 held-out pairs" in text
    assert ladder_table(ladder["summary"], 0.25) in text
    assert (checkpoint / "README.md").read_text() == "the training card\n"  # untouched unless asked

    args.update_model_card = True
    write_ladder_card(args, ladder)
    assert (checkpoint / "README.md").read_text() == text
    args.model_name_or_path = "someone/on-the-hub"
    assert write_ladder_card(args, ladder) is None
