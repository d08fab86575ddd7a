"""The does-it-see experiment: its parts (splits, questions, bootstrap, plan) and a trimmed end-to-end run.

The trimmed run asserts only on the mechanics (disjoint splits, every arm and mode scored, the report rendered),
never on the science outcome: a random-init tiny LLM and two training steps cannot see anything.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import yaml

from unicorn_hf.experiments.bootstrap import accuracy_interval, paired_difference
from unicorn_hf.experiments.config import Plan
from unicorn_hf.experiments.questions import (
    QuestionTemplates,
    evaluation_questions,
    group_by_source,
    title_in_prompt_questions,
    training_dialogues,
)
from unicorn_hf.experiments.splits import PairSplits, split_pairs_by_id
from unicorn_hf.lit.pairs import Pair


REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "recipes" / "experiments" / "does_it_see"
TEMPLATES = QuestionTemplates("What is shown?", "Answer with the letter.", "Is there {title}?", "One word.")


def _pairs(count: int, source: str = "emoji") -> list[Pair]:
    return [Pair(f"{source}/{i}", source, f"an emoji of thing {i}", lambda: None, f"thing {i}") for i in range(count)]


# ---- splits ---------------------------------------------------------------------------------------------------------
def test_splits_are_disjoint_sized_and_stable_when_pairs_are_added():
    pairs = _pairs(100)
    splits = split_pairs_by_id(pairs, seed=0, num_eval=10, num_pool=5, num_vlm_train=20, max_encoder_train=None)
    assert {name: len(ids) for name, ids in splits.ids.items()} == {
        "eval": 10, "pool": 5, "vlm_train": 20, "encoder_train": 65,
    }  # fmt: skip
    assert len({i for ids in splits.ids.values() for i in ids}) == 100
    # Hash order: a new pair only ever moves into the split its own hash decides, the others keep theirs.
    grown = split_pairs_by_id(pairs + _pairs(1, "openclipart"), 0, 10, 5, 20, None)
    moved = sum(a != b for a, b in zip(splits.ids["eval"], grown.ids["eval"], strict=True))
    assert moved <= 1


def test_overlapping_splits_are_refused(tmp_path):
    path = PairSplits(seed=0, ids={"eval": ["a", "b"], "pool": ["b"]}).save(tmp_path / "splits.json")
    with pytest.raises(ValueError, match="'eval' and 'pool' share 1 id"):
        PairSplits.load(path)


def test_untitled_pairs_only_train_the_encoder():
    pairs = [*_pairs(30), Pair("emoji/x", "emoji", "an emoji", lambda: None, "")]
    splits = split_pairs_by_id(pairs, seed=3, num_eval=10, num_pool=10, num_vlm_train=10, max_encoder_train=None)
    assert splits.ids["encoder_train"] == ["emoji/x"]
    with pytest.raises(ValueError, match="30 titled pairs"):
        split_pairs_by_id(pairs, seed=3, num_eval=20, num_pool=10, num_vlm_train=10, max_encoder_train=None)


def test_unreadable_images_leave_every_split_and_the_encoder_split_does_not_move():
    pairs = _pairs(60)
    clean = split_pairs_by_id(pairs, seed=0, num_eval=10, num_pool=5, num_vlm_train=10, max_encoder_train=None)
    broken = clean.ids["eval"][3]
    splits = split_pairs_by_id(pairs, 0, 10, 5, 10, None, readable=lambda pair: pair.id != broken)
    assert splits.unreadable == [broken]
    assert len(splits.ids["eval"]) == 9 and broken not in {i for ids in splits.ids.values() for i in ids}
    assert splits.ids["encoder_train"] == clean.ids["encoder_train"]


# ---- questions ------------------------------------------------------------------------------------------------------
def test_evaluation_questions_are_balanced_and_answerable():
    pairs = _pairs(40)
    questions = evaluation_questions(pairs, num_options=4, templates=TEMPLATES, seed=0)
    mc = [q for q in questions if q.kind == "mc"]
    yes_no = [q for q in questions if q.kind == "yes_no"]
    assert len(mc) == len(yes_no) == 40
    assert Counter(q.answer for q in yes_no) == {"yes": 20, "no": 20}
    titles = {p.id: p.title for p in pairs}
    for question in mc:
        assert question.options["ABCD".index(question.answer)] == titles[question.pair_id]
        assert len(set(question.options)) == 4
    for question in yes_no:
        assert (question.subject == titles[question.pair_id]) == (question.answer == "yes")
    # Seeded: the same seed gives the same questions.
    assert evaluation_questions(pairs, 4, TEMPLATES, seed=0) == questions


def test_distractors_come_from_the_same_source():
    pairs = _pairs(10, "emoji") + [
        Pair(f"openclipart/{i}", "openclipart", f"a clip-art drawing of d{i}", lambda: None, f"d{i}")
        for i in range(10)
    ]
    questions = evaluation_questions(pairs, num_options=4, templates=TEMPLATES, seed=1)
    for question in questions:
        if question.kind == "mc":
            prefix = "thing" if question.pair_id.startswith("emoji") else "d"
            assert all(option.startswith(prefix) for option in question.options)


def test_training_dialogues_follow_the_data_contract():
    import random

    pairs = _pairs(8)
    dialogues = training_dialogues(pairs[0], group_by_source(pairs), 4, TEMPLATES, "<image>", random.Random(0))
    assert [task for task, _ in dialogues] == ["mc", "qa"]  # the contract's tasks: mc | qa | reasoning
    for _, messages in dialogues:
        assert [m["role"] for m in messages] == ["user", "assistant"]
        assert messages[0]["content"].startswith("<image>\n") and messages[0]["content"].count("<image>") == 1
    assert dialogues[0][1][1]["content"] in "ABCD" and dialogues[1][1][1]["content"] in ("Yes", "No")


def test_no_training_answer_can_be_read_off_the_dialogue_text():
    """Each templated question is asked alone, so only the image answers it. Asked after the mc turn in one dialogue
    (the old form), "yes" always asked about the option the reply had just picked and "no" almost always about a
    title outside the options: SFT learned presence from the text and answered "no" to every held-out image."""
    from unicorn_hf.synthesis.pair_text import pair_text_rows

    drawings = [Pair(f"openclipart/{i}", "openclipart", f"drawing {i}", lambda: None, f"d{i}") for i in range(40)]
    pairs = _pairs(40) + drawings
    _, dialogues, _ = pair_text_rows(pairs, TEMPLATES, 4, 2, seed=0, image_token="<image>", caption_form="title")
    assert len(dialogues) == 2 * 2 * len(pairs) and Counter(row["task"] for row in dialogues) == {"mc": 160, "qa": 160}
    assert all(len(row["messages"]) == 2 for row in dialogues)
    title_of = {pair.title: pair for pair in pairs}
    yes_no = [row for row in dialogues if row["task"] == "qa"]
    replies = Counter(row["messages"][1]["content"] for row in yes_no)
    assert set(replies) == {"Yes", "No"} and min(replies.values()) > 0.35 * len(yes_no)
    for row in yes_no:
        asked = row["messages"][0]["content"].split("Is there ", 1)[1].split("?", 1)[0]
        shown = row["caption"]
        assert (asked == shown) == (row["messages"][1]["content"] == "Yes")
        assert title_of[asked].source == title_of[shown].source  # a "no" names another title of the same source


def test_title_in_prompt_writes_each_pairs_own_title_before_its_question():
    pairs = _pairs(6)
    questions = evaluation_questions(pairs, num_options=4, templates=TEMPLATES, seed=0)
    told = title_in_prompt_questions(questions, {p.id: p.title for p in pairs}, "The image shows {title}.")
    for question, asked in zip(questions, told, strict=True):
        title = next(p.title for p in pairs if p.id == question.pair_id)
        assert asked.text == f"The image shows {title}.\n{question.text}"
        assert (asked.kind, asked.answer, asked.options) == (question.kind, question.answer, question.options)
    with pytest.raises(KeyError, match="no title for pair"):
        title_in_prompt_questions(questions, {}, "{title}")


# ---- bootstrap ------------------------------------------------------------------------------------------------------
def test_bootstrap_interval_covers_the_mean_and_paired_difference_is_exact_when_identical():
    correct = np.array([1, 0, 1, 1, 0, 1, 1, 1, 0, 1] * 10)
    result = accuracy_interval(correct, num_resamples=500, confidence=0.95, seed=0)
    assert result["low"] < result["accuracy"] == 0.7 < result["high"]
    same = paired_difference(correct, correct, num_resamples=500, confidence=0.95, seed=0)
    assert same == {"difference": 0.0, "low": 0.0, "high": 0.0, "n": 100}
    better = paired_difference(np.ones(100), correct, num_resamples=500, confidence=0.95, seed=0)
    assert better["low"] > 0
    with pytest.raises(ValueError):
        paired_difference(correct, correct[:5], 10, 0.95, 0)


def test_plan_ships_every_arm_of_the_issue_and_rejects_a_bad_reference(tmp_path):
    plan = Plan.load(RECIPE / "plan.yaml")
    modes = {f"{arm.name}/{mode.name}" for arm in plan.arms for mode in arm.evaluate}
    assert plan.reference in modes
    assert {arm.embeddings for arm in plan.arms} == {"text", "image"}
    assert {mode.inputs for arm in plan.arms for mode in arm.evaluate} == {"images", "zero", "shuffled"}
    bad = yaml.safe_load((RECIPE / "plan.yaml").read_text()) | {"reference": "nope/x"}
    (tmp_path / "plan.yaml").write_text(yaml.safe_dump(bad))
    with pytest.raises(ValueError, match="reference 'nope/x'"):
        Plan.load(tmp_path / "plan.yaml")


# ---- trimmed end-to-end run ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def trimmed_run(tmp_path_factory, tiny_lm_path):
    """The experiment as `make experiment-does-it-see` runs it, with a tiny random LLM, tiny splits and two training
    steps."""
    folder = tmp_path_factory.mktemp("does_it_see")
    for name in ("pretrain", "sft", "transfer", "captions", "encoder"):
        config = yaml.safe_load((RECIPE / f"{name}.yaml").read_text())
        if name == "pretrain":
            config["model_name_or_path"] = tiny_lm_path
        if name == "encoder":
            config["num_train_epochs"] = 3
        (folder / f"{name}.yaml").write_text(yaml.safe_dump(config))
    plan = yaml.safe_load((RECIPE / "plan.yaml").read_text())
    plan["arms"] = [arm for arm in plan["arms"] if arm["name"] in ("mean_shift", "no_shift", "image_oracle")]
    (folder / "plan.yaml").write_text(yaml.safe_dump(plan))
    experiment = yaml.safe_load((RECIPE / "experiment.yaml").read_text())
    experiment.update(
        {
            f"{name}_config": str(folder / f"{name}.yaml")
            for name in ("pretrain", "sft", "transfer", "captions", "encoder")
        }
    )
    experiment.update(
        plan=str(folder / "plan.yaml"), output_dir=str(folder / "out"), num_eval=24, num_pool=8, num_vlm_train=24,
        max_encoder_train=120, num_expanded_captions=0, max_steps=2, eval_batch_size=24, bootstrap_resamples=200,
        recipes_dir=str(REPO / "recipes"),
    )  # fmt: skip
    (folder / "experiment.yaml").write_text(yaml.safe_dump(experiment))
    command = [sys.executable, str(RECIPE / "run.py"), "--config", str(folder / "experiment.yaml"), "--seed", "1"]
    subprocess.run(command, check=True, cwd=REPO, timeout=1200)
    return folder / "out"


def test_trimmed_run_scores_every_arm_and_renders_the_report(trimmed_run):
    splits = PairSplits.load(trimmed_run / "shared" / "splits.json")  # raises if any two splits overlap
    assert [len(splits.ids[name]) for name in ("eval", "pool", "vlm_train")] == [24, 8, 24]
    encoder_ids = json.loads((trimmed_run / "shared" / "encoder_pair_ids.json").read_text())
    held_out = set(splits.ids["eval"]) | set(splits.ids["pool"]) | set(splits.ids["vlm_train"])
    assert encoder_ids and not held_out & set(encoder_ids)
    results = json.loads((trimmed_run / "seed-1" / "results.json").read_text())
    expected = {"encoder/encoder_zero_shot", "baseline/most_frequent_answer", "mean_shift/eval_mean",
                "mean_shift/pool_mean", "mean_shift/blind_zero", "mean_shift/blind_shuffled", "no_shift/raw",
                "image_oracle/eval_mean"}  # fmt: skip
    assert set(results["summary"]) == expected
    for name, entry in results["summary"].items():
        assert entry["likelihood"]["all"]["n"] == 48, name
        assert 0.0 <= entry["likelihood"]["all"]["accuracy"] <= 1.0
    assert results["num_questions"] == {"all": 48, "mc": 24, "yes_no": 24}
    table = (trimmed_run / "seed-1" / "results.md").read_text()
    assert all(f"`{name}`" in table for name in expected)
    assert (trimmed_run / "seed-1" / "results.png").stat().st_size > 0
    # Every arm was probed on its own training rows, with its own, a shuffled and no embedding.
    assert set(results["probes"]) == {"mean_shift", "no_shift", "image_oracle"}
    for probe in results["probes"].values():
        assert {"nll_own", "nll_shuffled", "nll_zero"} <= set(probe["pretrain"])
        assert {"accuracy_own", "accuracy_shuffled", "accuracy_zero"} <= set(probe["sft"])
    assert "own beats shuffled" in table


def test_every_arm_trained_on_the_same_rows_with_its_own_embeddings(trimmed_run):
    from unicorn_hf.utils.hub import load_dataset_folder

    run = trimmed_run / "seed-1"
    rows = {arm: load_dataset_folder(run / arm / "transfer", "instructions") for arm in ("mean_shift", "no_shift",
                                                                                          "image_oracle")}  # fmt: skip
    ids = {arm: rows[arm]["id"] for arm in rows}
    assert ids["mean_shift"] == ids["no_shift"] == ids["image_oracle"]
    embeds = {arm: np.asarray(rows[arm]["image_embeds"], dtype=np.float32) for arm in rows}
    assert not np.allclose(embeds["mean_shift"], embeds["no_shift"])
    assert not np.allclose(embeds["mean_shift"], embeds["image_oracle"])
    # Re-running skips every finished stage and gives the same report.
    before = (run / "results.md").read_text()
    config = str(trimmed_run.parent / "experiment.yaml")
    subprocess.run([sys.executable, str(RECIPE / "run.py"), "--config", config, "--seed", "1"], check=True, cwd=REPO)
    assert (run / "results.md").read_text() == before


def test_a_named_budget_trains_from_the_finished_data_stages_alone(trimmed_run):
    """What a GPU machine without the encoder's weights or the Debian images runs (`budget`, `arms`): every data stage
    is reused, the arm trains again beside the default budget, and neither the encoder nor the pairs are touched (an
    unknown `sources` entry would fail the moment the pairs were collected)."""
    shared, run = trimmed_run / "shared", trimmed_run / "seed-1"
    default_report = (run / "results.md").read_text()
    config = str(trimmed_run.parent / "experiment.yaml")
    command = [sys.executable, str(RECIPE / "run.py"), "--config", config, "--seed", "1", "--budget", "second",
               "--arms", "mean_shift", "--sources", "no_such_source"]  # fmt: skip
    (shared / "encoder").rename(shared / "encoder-away")
    try:
        subprocess.run(command, check=True, cwd=REPO, timeout=1200)
    finally:
        (shared / "encoder-away").rename(shared / "encoder")
    results = json.loads((run / "second" / "results.json").read_text())
    assert set(results["summary"]) == {
        "encoder/encoder_zero_shot", "baseline/most_frequent_answer", "mean_shift/eval_mean", "mean_shift/pool_mean",
        "mean_shift/blind_zero", "mean_shift/blind_shuffled",
    }  # fmt: skip
    default = json.loads((run / "results.json").read_text())
    assert results["summary"]["encoder/encoder_zero_shot"] == default["summary"]["encoder/encoder_zero_shot"]
    assert (run / "mean_shift" / "second" / "sft" / "model.safetensors").is_file()
    assert set(results["probes"]) == {"mean_shift"}
    assert (run / "results.md").read_text() == default_report  # the default budget's report is untouched
    assert "`mean_shift/eval_mean`" in (trimmed_run / "results-second.md").read_text()


def test_plan_select_keeps_the_reference_arm():
    plan = Plan.load(RECIPE / "plan.yaml")
    assert [arm.name for arm in plan.select(["image_oracle", "mean_shift"]).arms] == ["mean_shift", "image_oracle"]
    assert plan.select(None) is plan
    with pytest.raises(ValueError, match="leave out the reference arm"):
        plan.select(["no_shift"])
    with pytest.raises(ValueError, match=r"\['nope'\] are not in the plan"):
        plan.select(["mean_shift", "nope"])
