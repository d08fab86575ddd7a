"""The whole offline path on real photographs: image -> encoder -> shift -> model -> answer -> score -> card.

A tiny Unicorn checkpoint (2-layer Llama with SmolLM2's tokenizer) is paired with a tiny random-init open_clip
encoder; its `text_mean` / `image_mean` are real means of that encoder over the packaged captions / photographs.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch
from huggingface_hub import ModelCard

from unicorn_fixtures.evaluation import build_tiny_checkpoint, write_tiny_open_clip
from unicorn_hf.evaluation.benchmarks import BENCHMARKS
from unicorn_hf.evaluation.inference import UnicornImageQA, make_pipeline
from unicorn_hf.utils.assets import photographs
from unicorn_hf.utils.paths import resolve_recorded_path


REPO = Path(__file__).resolve().parent.parent
NUM_IMAGE_TOKENS = 2


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # Tiny matmuls on a shared 2-core machine: one thread avoids oversubscription (several times faster).
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    from unicorn_hf.encoders import load_encoder

    folder = write_tiny_open_clip(tmp_path_factory.mktemp("tiny-clip"))
    return load_encoder(f"local-dir:{folder}", device="cpu", dtype="float32", batch_size=8, init_seed=0)


@pytest.fixture(scope="module")
def photos():
    return photographs()


def training_record() -> dict:
    stage = {
        "stage": "sft",
        "base_model": {"name_or_path": "tiny-llama", "revision": None},
        "hyperparameters": {"learning_rate": 1e-4, "global_batch_size": 4,
                            "global_batch_formula": "4 per device x 1 accumulation x 1 processes"},
        "command": "accelerate launch recipes/sft.py --config recipes/tiny/sft.yaml",
    }  # fmt: skip
    return {**stage, "previous_stages": [{**stage, "stage": "pretrain"}]}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, tiny_lm_path, encoder, photos):
    return build_tiny_checkpoint(
        tiny_lm_path,
        tmp_path_factory.mktemp("unicorn-tiny") / "sft",
        encoder,
        num_image_tokens=NUM_IMAGE_TOKENS,
        training_info=training_record(),
        image_mean_from=[image for _, image in photos],
        text_mean_from=[photo.caption for photo, _ in photos],
    )


@pytest.fixture(scope="module")
def qa(checkpoint):
    return UnicornImageQA.from_pretrained(
        checkpoint, device="cpu", dtype="float32", encoder_batch_size=8, prompt_template="<image>\n{question}"
    )


def captured_image_embeds(qa, monkeypatch) -> list[torch.Tensor]:
    """Record the `image_embeds` every generate call receives (the model still runs)."""
    seen = []
    generate = qa.model.generate

    def spy(*args, **kwargs):
        seen.append(kwargs["image_embeds"].detach().clone())
        return generate(*args, **kwargs)

    monkeypatch.setattr(qa.model, "generate", spy)
    return seen


def test_encoder_is_rebuilt_from_the_model_config(qa, encoder):
    assert qa.encoder.id == qa.model.config.encoder_id == encoder.id
    image = photographs()[3][1]
    torch.testing.assert_close(qa.encode_images([image]), encoder.encode_image([image]))


def test_each_mean_mode_subtracts_its_mean(qa, photos, monkeypatch):
    images = [image for _, image in photos[:5]]
    raw = qa.encode_images(images)  # [5, D]
    stats = qa.model.modality_statistics
    expected = {
        "eval": raw - raw.mean(0),  # the evaluated images' own mean (the paper)
        "image": raw - stats.image_mean,
        "text": raw - stats.text_mean,
        "none": raw,
    }
    seen = captured_image_embeds(qa, monkeypatch)
    for mode, embeds in expected.items():
        answers = qa.answer(images, ["Is there a cat?"] * 5, mean=mode, batch_size=3, max_new_tokens=2)
        assert len(answers) == 5 and all(isinstance(a, str) for a in answers)
        torch.testing.assert_close(torch.cat(seen[-2:]), embeds)  # two batches: 3 + 2
    assert not torch.allclose(expected["eval"], expected["image"])  # the modes are really different


def test_image_mode_refuses_a_checkpoint_without_image_mean(qa, monkeypatch):
    monkeypatch.setattr(qa.model.config, "has_image_mean", False)
    with pytest.raises(ValueError, match="no image_mean"):
        qa.resolve_mean("image")


def test_paths_work_as_images(qa, photos, tmp_path):
    path = tmp_path / "cat.png"
    photos[3][1].save(path)
    torch.testing.assert_close(qa.encode_images([str(path)]), qa.encode_images([photos[3][1]]))
    undecoded = {"bytes": path.read_bytes(), "path": None}  # a Hub image column cast with decode=False
    torch.testing.assert_close(qa.encode_images([undecoded]), qa.encode_images([photos[3][1]]))
    with pytest.raises(FileNotFoundError):
        qa.encode_images([str(tmp_path / "missing.png")])


def test_image_text_to_text_pipeline_runs_the_same_path(qa, photos, monkeypatch):
    images = [photos[3][1], photos[0][1]]
    pipe = make_pipeline(qa, mean="image")
    seen = captured_image_embeds(qa, monkeypatch)
    prompts = [qa.format_prompt("Is there a cat?")] * 2
    outputs = pipe(images=images, text=prompts, max_new_tokens=2, return_full_text=False)
    assert len(outputs) == 2 and all(isinstance(out["generated_text"], str) for out in outputs)
    expected = qa.transfer(qa.encode_images(images), "image")  # [2, D]
    torch.testing.assert_close(torch.cat(seen), expected)


def load_recipe():
    spec = importlib.util.spec_from_file_location("unicorn_evaluate_recipe", REPO / "recipes" / "evaluate_vlm.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_tiny_recipe_end_to_end_with_model_card(checkpoint, tmp_path, monkeypatch, planted_token):
    recipe = load_recipe()
    output_dir = tmp_path / "eval"
    argv = ["--config", str(REPO / "recipes/tiny/evaluate.yaml"), "--model_name_or_path", str(checkpoint),
            "--output_dir", str(output_dir), "--max_samples", "2", "--max_new_tokens", "3"]  # fmt: skip
    before = {path.name: path.stat().st_mtime_ns for path in checkpoint.iterdir()}

    def parse(argv: list[str], sees_results: str | None = None):
        model_args, data_args, args = recipe.make_parser().parse_args_and_config(args=argv)
        model_args.encoder = None  # the checkpoint's own encoder (the YAML names the quickstart's folder)
        args.sees_results = sees_results  # recipes/sees.py's output: not part of this test
        return model_args, data_args, args

    with pytest.raises(FileNotFoundError, match=r"sees.json': no such file; run recipes/sees.py first"):
        recipe.main(*parse(argv, sees_results=str(tmp_path / "sees.json")))  # named before any work
    assert not output_dir.exists()
    summary = recipe.main(*parse(argv))
    # Every file it writes is under output_dir: the checkpoint folder is left exactly as it was.
    assert {path.name: path.stat().st_mtime_ns for path in checkpoint.iterdir()} == before

    results = json.loads((output_dir / "results.json").read_text())
    assert results["headline"] == summary["headline"]
    scored = [r for r in results["results"] if "metrics" in r]
    modes = {r["mean_mode"] for r in scored}
    assert modes == {"eval", "image", "text"}  # the tiny YAML's modes; image_mean exists here
    expected_counts = {"pope": 2, "mme": 2, "scienceqa_img": 2, "mmbench": 2 * 4, "mmstar": 2}
    for entry in scored:
        assert entry["num_examples"] == expected_counts[entry["benchmark"]]
        assert entry["predictions"].startswith("<output_dir>/predictions/")  # no path of this machine (issue 15)
        predictions = resolve_recorded_path(entry["predictions"], output_dir)
        records = [json.loads(line) for line in predictions.read_text().splitlines()]
        assert len(records) == entry["num_examples"]
        assert all({"generation", "extracted", "correct", "prompt"} <= set(r) for r in records)
        main = entry["metrics"][entry["main_metric"]]
        assert 0.0 <= main <= (200.0 * 14 if entry["benchmark"] == "mme" else 1.0)
    assert len(scored) == len(BENCHMARKS) * len(modes)

    # The card under output_dir holds every (benchmark, card metric, mean mode) in its model-index, same values.
    card = ModelCard.load(output_dir / "model_card" / "README.md")
    in_card = {(r.dataset_type, r.metric_type, r.metric_config): r.metric_value for r in card.data.eval_results}
    assert len(in_card) == sum(len(r["card_metrics"]) for r in scored)
    for entry in scored:
        for metric in entry["card_metrics"]:
            key = (f"fixture/{entry['benchmark']}", metric, f"mean={entry['mean_mode']}")
            assert in_card[key] == pytest.approx(entry["metrics"][metric], abs=1e-4)
    assert "### Stage: pretrain" in card.text and "Global batch: **4**" in card.text

    # A re-run re-scores the stored predictions without generating again, and leaves the card's size alone; with
    # --update_model_card (asked for by name) the same card is also written into the checkpoint folder.
    monkeypatch.setattr(UnicornImageQA, "generate_from_embeds", lambda *a, **k: pytest.fail("generated again"))
    again = recipe.main(*parse([*argv, "--update_model_card", "true"]))
    assert again["headline"] == summary["headline"]
    assert len(ModelCard.load(output_dir / "model_card" / "README.md").data.eval_results) == len(in_card)
    assert (checkpoint / "README.md").read_text() == (output_dir / "model_card" / "README.md").read_text()
    planted_token.assert_absent(output_dir, checkpoint)


def test_predictions_cut_short_by_a_kill_are_generated_again(tmp_path):
    from unicorn_hf.evaluation import run as recipe

    path = tmp_path / "predictions" / "pope" / "eval.jsonl"
    recipe._write_jsonl(path, [{"id": "a", "generation": "yes"}, {"id": "b", "generation": "no"}])
    assert [r["id"] for r in recipe._read_jsonl(path)] == ["a", "b"] and not list(path.parent.glob("*.partial"))
    path.write_text(path.read_text()[:-9])  # what a non-atomic write leaves when killed
    assert recipe._read_jsonl(path) is None  # -> generated again instead of failing every re-run
