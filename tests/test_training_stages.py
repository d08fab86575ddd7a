"""Two steps of pretraining and of SFT through the recipe scripts, on a tiny random Llama with SmolLM2's tokenizer.

TRL's test style: after training, every trainable parameter changed and every frozen one did not. Plus LoRA
save/reload (merged and unmerged), resuming at the right step, and loading the result with
`AutoModelForImageTextToText` to generate.
"""

from __future__ import annotations

import importlib.util
import json
import tempfile
from pathlib import Path

import pytest
import torch
import yaml as yaml_module
from safetensors.torch import load_file
from trl import SFTTrainer

from unicorn_fixtures.synthetic import write_synthetic_transfer_folder


ROOT = Path(__file__).resolve().parents[1]
DIM = 24


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(f"recipe_{name}", ROOT / "recipes" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(name: str, yaml: str, **overrides):
    """Parse the tiny recipe YAML through the script's own parser, override, run `main`; return the trainer.

    The tiny SFT recipe carries the quickstart encoder's image tower (`image_tower_encoder`); these runs train on
    synthetic embeddings of no real encoder, so that field is unset (tests/test_sft_image_tower.py covers it)."""
    script = load_script(name)
    config = yaml_module.safe_load((ROOT / "recipes" / "tiny" / yaml).read_text())
    config.update({"image_tower_encoder": None, "image_tower_mean": None} if name == "sft" else {})
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as handle:
        yaml_module.safe_dump(config, handle)
    args = ["--config", handle.name]
    for key, value in overrides.items():
        args += [f"--{key}", str(value)]
    return script.main(*script.make_parser().parse_args_and_config(args=args))


@pytest.fixture(scope="module")
def transfer_folder(tmp_path_factory):
    return write_synthetic_transfer_folder(
        tmp_path_factory.mktemp("transfer"), num_rows=8, embed_dim=DIM, encoder_id="test/enc", caption_words=12, seed=0
    )


@pytest.fixture
def snapshots(monkeypatch):
    """Parameters (and whether they train) right before `train()`, and how many optimizer steps ran."""
    record = {"before": None, "after": None, "steps": 0}
    original_train, original_step = SFTTrainer.train, SFTTrainer.training_step

    def train(self, *args, **kwargs):
        record["before"] = parameters(self.model)
        result = original_train(self, *args, **kwargs)
        record["after"] = parameters(self.model)  # before the script merges LoRA adapters away
        return result

    def training_step(self, *args, **kwargs):
        record["steps"] += 1
        return original_step(self, *args, **kwargs)

    monkeypatch.setattr(SFTTrainer, "train", train)
    monkeypatch.setattr(SFTTrainer, "training_step", training_step)
    return record


def parameters(model) -> dict[str, tuple[torch.Tensor, bool]]:
    return {n: (p.detach().clone(), p.requires_grad) for n, p in model.named_parameters()}


def assert_trained_exactly(before: dict, after: dict, trainable_parts: tuple[str, ...]) -> None:
    """Every trainable parameter changed, every frozen one did not; trainable = names containing one of the parts."""
    assert before.keys() == after.keys()
    trained = frozen = 0
    for name, (old, requires_grad) in before.items():
        new = after[name][0]
        expected = any(part in name for part in trainable_parts)
        assert requires_grad == expected, f"{name}: requires_grad={requires_grad}, expected {expected}"
        if requires_grad:
            assert not torch.equal(old, new), f"trainable {name} did not change"
            trained += 1
        else:
            assert torch.equal(old, new), f"frozen {name} changed"
            frozen += 1
    assert trained and (frozen or trainable_parts == ("",))


def common(tmp_path: Path, transfer_folder: Path, stage: str) -> dict:
    return {
        "dataset_name": transfer_folder,
        "output_dir": tmp_path / stage,
        "max_steps": 2,
        "per_device_train_batch_size": 2,
        "learning_rate": 1e-3,
        "warmup_steps": 0,  # a warm-up step has lr 0, and LoRA A only moves once B is non-zero
        "logging_steps": 1,
    }


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory, tiny_lm_path, transfer_folder):
    """One pretraining run shared by the SFT tests (its own assertions are in test_pretrain_trains_projector_only)."""
    tmp_path = tmp_path_factory.mktemp("pretrain")
    from _pytest.monkeypatch import MonkeyPatch

    patch = MonkeyPatch()
    record = {}
    original_train = SFTTrainer.train

    def train(self, *args, **kwargs):
        record["before"] = parameters(self.model)
        result = original_train(self, *args, **kwargs)
        record["after"] = parameters(self.model)
        return result

    patch.setattr(SFTTrainer, "train", train)
    try:
        # Gradient checkpointing on, as in the 8B recipe: the projector must still get gradients through the
        # frozen, checkpointed LLM.
        trainer = run("pretrain", "pretrain.yaml", model_name_or_path=tiny_lm_path, gradient_checkpointing=True,
                      **common(tmp_path, transfer_folder, "pretrain"))  # fmt: skip
    finally:
        patch.undo()
    return trainer, record, tmp_path / "pretrain"


def test_pretrain_trains_projector_only(pretrained, transfer_folder):
    trainer, record, output_dir = pretrained
    assert trainer.state.global_step == 2
    assert_trained_exactly(record["before"], record["after"], ("projector.",))
    # The statistics of the data travel in the checkpoint, and the record names everything a card needs.
    weights = load_file(str(output_dir / "model.safetensors"))
    stats = load_file(str(transfer_folder / "transfer_stats.safetensors"))
    assert torch.equal(weights["modality_statistics.text_mean"], stats["text_mean"])
    meta = json.loads((output_dir / "unicorn_training.json").read_text())
    assert meta["stage"] == "pretrain" and meta["encoder"] == {"encoder_id": "test/enc", "embed_dim": DIM}
    assert meta["hyperparameters"]["global_batch_size"] == 2  # 2 per device x 1 accumulation x 1 process
    assert meta["dataset"]["rows_trained"] == 8 and meta["drops"]["rows_out"] == 8
    assert meta["results"]["global_step"] == 2 and meta["results"]["train_loss"] > 0
    for name in ("modeling_unicorn.py", "processor_config.json", "tokenizer.json", "README.md"):
        assert (output_dir / name).is_file(), name


def test_sft_full_trains_projector_and_llm(pretrained, tmp_path, transfer_folder, snapshots):
    _, _, pretrain_dir = pretrained
    run("sft", "sft.yaml", model_name_or_path=pretrain_dir, **common(tmp_path, transfer_folder, "sft"))
    assert_trained_exactly(snapshots["before"], snapshots["after"], ("",))  # everything trains
    record = json.loads((tmp_path / "sft" / "unicorn_training.json").read_text())
    assert record["model"]["trained"] == {"projector": True, "language_model": "full"}
    assert [stage["stage"] for stage in record["previous_stages"]] == ["pretrain"]

    # The saved model loads through the Auto classes and generates from a prompt with an image embedding.
    from transformers import AutoModelForImageTextToText, AutoProcessor

    model = AutoModelForImageTextToText.from_pretrained(tmp_path / "sft").eval()
    processor = AutoProcessor.from_pretrained(tmp_path / "sft")
    prompt = processor.apply_chat_template(
        [{"role": "user", "content": "<image>\nDescribe the picture."}], add_generation_prompt=True, tokenize=False
    )
    inputs = processor(text=prompt, image_embeds=torch.zeros(1, DIM))
    output = model.generate(**inputs, max_new_tokens=4, do_sample=False)
    assert output.shape[1] > inputs["input_ids"].shape[1]


def test_sft_lora_saves_and_reloads(pretrained, tmp_path, transfer_folder, snapshots):
    from peft import PeftModel

    from unicorn_hf.modeling import UnicornForConditionalGeneration

    _, _, pretrain_dir = pretrained
    run("sft", "sft.yaml", model_name_or_path=pretrain_dir, use_peft=True,
                  **common(tmp_path, transfer_folder, "sft"))  # fmt: skip
    # LoRA A/B of the LLM and the projector (a PEFT `modules_to_save` copy) train; the LLM's base weights do not.
    before = snapshots["before"]
    assert any("lora_A" in n for n in before) and any("modules_to_save" in n for n in before)
    assert_trained_exactly(before, snapshots["after"], ("lora_A", "lora_B", "modules_to_save.default.layers"))

    output_dir = tmp_path / "sft"
    merged = UnicornForConditionalGeneration.from_pretrained(output_dir).eval()
    base = UnicornForConditionalGeneration.from_pretrained(pretrain_dir)
    unmerged = PeftModel.from_pretrained(base, output_dir / "adapter").eval()
    image = merged.config.image_token_id
    input_ids = torch.tensor([[image] * merged.config.num_image_tokens + [100, 200, 300]])
    embeds = torch.randn(1, DIM)
    with torch.no_grad():
        merged_logits = merged(input_ids=input_ids, image_embeds=embeds).logits
        unmerged_logits = unmerged(input_ids=input_ids, image_embeds=embeds).logits
        base_logits = UnicornForConditionalGeneration.from_pretrained(pretrain_dir)(
            input_ids=input_ids, image_embeds=embeds
        ).logits
    torch.testing.assert_close(merged_logits, unmerged_logits, atol=1e-4, rtol=1e-4)
    assert not torch.allclose(merged_logits, base_logits, atol=1e-4)  # the adapters do something


def test_resume_continues_at_the_right_step(tiny_lm_path, tmp_path, transfer_folder, snapshots, capsys, planted_token):
    args = {**common(tmp_path, transfer_folder, "pretrain"), "save_strategy": "steps", "save_steps": 2}
    run("pretrain", "pretrain.yaml", model_name_or_path=tiny_lm_path, **args)
    assert snapshots["steps"] == 2 and (tmp_path / "pretrain" / "checkpoint-2").is_dir()
    # Killed while saving step 4: the folder exists but holds only a temporary file (no trainer_state.json).
    (tmp_path / "pretrain" / "checkpoint-4").mkdir()
    (tmp_path / "pretrain" / "checkpoint-4" / "tmp1a2b3c.safetensors").write_bytes(b"\0" * 16)
    snapshots["steps"] = 0
    trainer = run("pretrain", "pretrain.yaml", model_name_or_path=tiny_lm_path, **{**args, "max_steps": 4})
    assert snapshots["steps"] == 2 and trainer.state.global_step == 4  # steps 3 and 4 only, from checkpoint-2
    assert "Not resuming from " + str(tmp_path / "pretrain" / "checkpoint-4") + ": it has no trainer_state.json" in (
        capsys.readouterr().out
    )
    record = json.loads((tmp_path / "pretrain" / "unicorn_training.json").read_text())
    assert record["results"]["resumed_from_checkpoint"].endswith("checkpoint-2")

    # The token count goes on from the checkpoint: the same as in one uninterrupted run of 4 steps.
    reference = run("pretrain", "pretrain.yaml", model_name_or_path=tiny_lm_path,
                    **{**args, "max_steps": 4, "output_dir": tmp_path / "reference"})  # fmt: skip

    def tokens_at(step: int, history: list[dict]) -> int:
        return next(entry["num_tokens"] for entry in history if entry.get("step") == step and "num_tokens" in entry)

    assert (
        tokens_at(4, trainer.state.log_history)
        == tokens_at(4, reference.state.log_history)
        > tokens_at(2, reference.state.log_history)
    )
    planted_token.assert_absent(tmp_path / "pretrain")  # checkpoints, training_args.bin and the record included


def test_an_incomplete_checkpoint_named_explicitly_is_refused(tiny_lm_path, tmp_path, transfer_folder):
    checkpoint = tmp_path / "checkpoint-6"
    checkpoint.mkdir()
    with pytest.raises(ValueError, match=r"checkpoint-6: cannot resume, it has no trainer_state.json"):
        run("pretrain", "pretrain.yaml", model_name_or_path=tiny_lm_path, resume_from_checkpoint=checkpoint,
            **common(tmp_path, transfer_folder, "pretrain"))  # fmt: skip


def test_model_config_mismatch_is_clear(pretrained, tmp_path, transfer_folder):
    _, _, pretrain_dir = pretrained
    with pytest.raises(ValueError, match="pretrained with num_image_tokens=8"):
        run("sft", "sft.yaml", model_name_or_path=pretrain_dir, num_image_tokens=3,
            **common(tmp_path, transfer_folder, "sft"))  # fmt: skip
    with pytest.raises(ValueError, match="says embed_dim=1280"):
        run("pretrain", "pretrain.yaml", model_name_or_path=pretrain_dir, embed_dim=1280,
            **common(tmp_path, transfer_folder, "pretrain"))  # fmt: skip


def test_stock_sft_loss_equals_the_models_full_logit_loss(tiny_lm_path, tmp_path, transfer_folder):
    """TRL's stock `SFTTrainer` loss (its fused LM head runs `model.base_model` and projects only the scored
    positions, in chunks) is the model's own loss over the full logits, with and without `num_items_in_batch`, and
    its token accuracy is the full logits' one. The LM head module itself never runs."""
    from unicorn_hf.training.builder import build_from_text_model
    from unicorn_hf.training.config import UnicornTrainingConfig
    from unicorn_hf.training.data import prepare_dataset
    from unicorn_hf.training.setup import build_trainer, load_train_split

    model, processor = build_from_text_model(
        tiny_lm_path, embed_dim=DIM, projector_type="mlp2x_gelu", num_image_tokens=4
    )
    script_args = type("Args", (), {"dataset_name": str(transfer_folder), "dataset_config": "instructions",
                                    "dataset_train_split": "train", "max_train_samples": 4})()  # fmt: skip
    prepared = prepare_dataset(load_train_split(script_args), stage="sft", processor=processor, embed_dim=DIM,
                               max_length=None)  # fmt: skip
    args = UnicornTrainingConfig(output_dir=str(tmp_path), use_cpu=True, report_to="none", max_length=None)
    trainer = build_trainer(model, processor, args, prepared.dataset)
    assert type(trainer) is SFTTrainer
    batch = trainer.data_collator([prepared.dataset[i] for i in range(4)])
    assert (batch["attention_mask"] == 0).any()  # dialogues of different lengths: padding is exercised
    model.eval()
    head_calls = []
    hook = model.lm_head.register_forward_hook(lambda module, args, output: head_calls.append(output.shape))
    with torch.no_grad():
        loss = trainer.compute_loss(model, dict(batch))
        num_items = (batch["labels"][:, 1:] != -100).sum()
        summed = trainer.compute_loss(model, dict(batch), num_items_in_batch=num_items)
    hook.remove()
    assert head_calls == []  # the fused head reads the weight in chunks of scored positions only
    with torch.no_grad():
        full = model(**batch)  # [B, T, V] logits, the model's own shift and loss
    torch.testing.assert_close(loss, full.loss)
    torch.testing.assert_close(summed, full.loss)
    scored = batch["labels"][:, 1:] != -100
    correct = (full.logits[:, :-1].argmax(-1) == batch["labels"][:, 1:]) & scored
    accuracy = trainer._metrics["eval"]["mean_token_accuracy"][-1]  # "eval": the model is in eval mode
    assert accuracy == pytest.approx(float(correct.sum() / scored.sum()))
