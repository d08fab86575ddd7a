"""The quickstart, trimmed (fewer seeds, pairs and steps), run exactly as `make quickstart` runs it.

Same scripts, same recipe files and the same packaged real models; only sizes are overridden, so the artifacts a
user gets are checked end to end: dataset folders that `load_dataset` reads, a checkpoint that
`AutoModelForImageTextToText.from_pretrained` loads and that generates, a checkpoint folder that answers about a real
image through `pipeline("image-text-to-text", trust_remote_code=True)` with unicorn_hf not importable, and a model card
that `ModelCard.load` parses.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from datasets import load_dataset

from unicorn_fixtures.folder_pipeline import BLOCK_UNICORN_HF


REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "recipes" / "tiny"
# What a stage writes that a person or a loader reads as text: none of it may name a path of this machine.
TEXT_SUFFIXES = (".json", ".jsonl", ".md", ".yaml", ".yml", ".jinja", ".txt", ".py", ".csv")

# Per stage: the fields set smaller than recipes/tiny (everything else is the shipped recipe).
TRIMMED = {
    "encoder": {"max_pairs_per_source": 48, "num_train_epochs": 5, "eval_fraction": 0.25},
    "pair_text": {"num_pairs": 24},
    "pretrain": {"max_steps": 2, "logging_steps": 1},
    "sft": {"max_steps": 2, "logging_steps": 1},
    "sees": {"num_images": 8, "bootstrap_resamples": 200},
    "evaluate": {"benchmarks": ["pope", "mmstar"], "max_samples": 2, "mean_modes": ["eval", "image", "text"]},
}


def write_trimmed_recipe(folder: Path, outputs: Path) -> Path:
    """Copy recipes/tiny with outputs under `outputs`, sizes from TRIMMED; returns the quickstart YAML."""
    folder.mkdir(parents=True)
    for path in TINY.glob("*.yaml"):
        text = path.read_text().replace("outputs/tiny", str(outputs))
        config = yaml.safe_load(text)
        stage = path.stem
        config.update(TRIMMED.get(stage, {}))
        if stage == "captions":  # the synthesis stages run at the recipe's own size: a 135M model needs a few
            for source in config["seed_sources"]:  # tries to write one valid JSON dialogue
                if str(source.get("path", "")).startswith("recipes/"):
                    source["path"] = str(REPO / source["path"])
        if stage in ("pair_text", "sees"):  # the trimmed encoder's pairs, not the shipped recipe's
            config["encoder_config"] = str(folder / "encoder.yaml")
        if stage == "quickstart":
            config["recipe_dir"] = str(folder)
            config["accelerate_config"] = str(REPO / config["accelerate_config"])
        (folder / path.name).write_text(yaml.safe_dump(config, sort_keys=False))
    return folder / "quickstart.yaml"


def run_stages(config: Path, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO / "recipes" / "quickstart.py"), "--config", str(config)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=2400,
        check=False,
    )


@pytest.fixture(scope="module")
def quickstart_run(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    root = tmp_path_factory.mktemp("quickstart")
    outputs = root / "outputs"
    config = write_trimmed_recipe(root / "recipe", outputs)
    result = run_stages(config, cwd=REPO)
    assert result.returncode == 0, (result.stdout[-4000:], result.stderr[-4000:])
    return config, result


def test_every_stage_ran_and_the_summary_names_them(quickstart_run):
    config, result = quickstart_run
    recipe = yaml.safe_load(config.read_text())
    summary = json.loads(Path(recipe["summary_file"]).read_text())
    assert [stage["name"] for stage in summary["stages"]] == recipe["stages"]
    assert all(stage["seconds"] is not None for stage in summary["stages"])
    assert f"unicorn-hf: {len(recipe['stages'])} stages" in result.stdout  # the final table


def test_datasets_load_with_load_dataset(quickstart_run):
    config, _ = quickstart_run
    outputs = Path(yaml.safe_load(config.read_text())["summary_file"]).parent
    captions = load_dataset(str(outputs / "captions"), "captions", split="train")
    assert {"id", "seed", "seed_source", "caption", "model_name"} <= set(captions.column_names)
    assert len(captions) >= 1 and all(caption.strip() for caption in captions["caption"])
    text = load_dataset(str(outputs / "text"), "captions", split="train")  # stage 1 + the pairs' captions
    pair_rows = json.loads((outputs / "text" / "pair_text.json").read_text())["pairs"]
    assert text["id"][: len(captions)] == captions["id"] and len(text) == len(captions) + pair_rows
    transferred = load_dataset(str(outputs / "transfer"), "captions", split="train")
    stats = json.loads((outputs / "transfer" / "transfer_stats.json").read_text())
    assert len(transferred) == len(text)
    assert {len(vector) for vector in transferred["image_embeds"]} == {stats["dim"]}
    assert transferred.features["image_embeds"].feature.dtype == "float16"
    instructions = load_dataset(str(outputs / "transfer"), "instructions", split="train")
    for messages in instructions["messages"]:
        assert messages[0]["role"] == "user" and messages[0]["content"].count("<image>") == 1


def test_checkpoint_loads_with_automodel_and_generates(quickstart_run):
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    import unicorn_hf  # noqa: F401  (registers the Auto classes)

    config, _ = quickstart_run
    sft = Path(yaml.safe_load(config.read_text())["summary_file"]).parent / "sft"
    model = AutoModelForImageTextToText.from_pretrained(sft).eval()
    processor = AutoProcessor.from_pretrained(sft)
    assert model.config.encoder_id and model.modality_statistics.text_mean.abs().sum() > 0
    prompt = processor.tokenizer.apply_chat_template(
        [{"role": "user", "content": "<image>\nWhat is in the image?"}], tokenize=False, add_generation_prompt=True
    )
    inputs = processor(text=[prompt], image_embeds=torch.randn(1, model.config.embed_dim))
    generated = model.generate(**inputs, max_new_tokens=4, do_sample=False)
    assert generated.shape[1] > inputs["input_ids"].shape[1]


# transformers' pipeline on the SFT folder alone, with unicorn_hf not importable (the remote code the folder holds):
# prints the answer and saves the first answer token's logits to argv[4].
REMOTE_PIPELINE = BLOCK_UNICORN_HF + textwrap.dedent(
    """
    import json
    sys.path.insert(0, sys.argv[5])  # tests/: the comparison helper, which imports torch and transformers only
    import torch
    from PIL import Image
    from unicorn_fixtures.folder_pipeline import pipeline_answer

    answer, logits = pipeline_answer(sys.argv[1], Image.open(sys.argv[2]), sys.argv[3], max_new_tokens=8,
                                     trust_remote_code=True)
    assert "unicorn_hf" not in sys.modules
    torch.save(logits, sys.argv[4])
    print("ANSWER:" + json.dumps(answer))
    """
)


def test_the_sft_folder_answers_about_a_real_image_by_itself(quickstart_run, tmp_path):
    """The quickstart's SFT checkpoint carries the encoder's image tower shifted by the stored image mean: the
    pipeline on the folder alone gives the project's own answer (UnicornImageQA, mean="image") and logits."""
    import torch

    from unicorn_fixtures.folder_pipeline import project_answer
    from unicorn_hf.evaluation.inference import UnicornImageQA
    from unicorn_hf.utils.assets import load_photograph

    config, _ = quickstart_run
    outputs = Path(yaml.safe_load(config.read_text())["summary_file"]).parent
    sft = outputs / "sft"
    saved = {name: (sft / name).read_text() for name in ("config.json", "processor_config.json")}
    assert json.loads(saved["config.json"])["image_tower_mean"] == "image"
    assert json.loads(saved["config.json"])["vision_config"]["model_type"] == "timm_wrapper"
    assert not any(str(outputs) in text or str(REPO) in text for text in saved.values())  # no machine path
    record = json.loads((sft / "unicorn_training.json").read_text())["image_tower"]
    assert record["class"] == "TimmWrapperForImageClassification" and record["mean"] == "image"

    image_path, question = tmp_path / "cat.png", "What is in the image?"
    load_photograph("chelsea").save(image_path)  # scikit-image's tabby cat, a real photograph
    result = subprocess.run(
        [sys.executable, "-c", REMOTE_PIPELINE, str(sft), str(image_path), question, str(tmp_path / "logits.pt"),
         str(REPO / "tests")],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    answer = json.loads(result.stdout.split("ANSWER:", 1)[1])

    from PIL import Image

    qa = UnicornImageQA.from_pretrained(
        sft, device="cpu", dtype="float32", encoder_batch_size=1, encoder=f"local-dir:{outputs / 'encoder'}"
    )
    expected, logits = project_answer(qa, Image.open(image_path), question, max_new_tokens=8)
    assert answer == expected
    # Two pixel paths (timm image processor + tower, open_clip preprocess + encode_image) in float32: 4e-5 measured.
    torch.testing.assert_close(torch.load(tmp_path / "logits.pt"), logits, atol=5e-4, rtol=0)


def test_model_card_parses_with_results(quickstart_run):
    from huggingface_hub import ModelCard

    config, _ = quickstart_run
    outputs = Path(yaml.safe_load(config.read_text())["summary_file"]).parent
    # Each trained checkpoint carries the project's card (not TRL's text-generation one): task and base model right.
    for stage in ("pretrain", "sft"):
        trained = ModelCard.load(outputs / stage / "README.md")
        assert trained.data.pipeline_tag == "image-text-to-text", stage
        assert trained.data.base_model == "HuggingFaceTB/SmolLM2-135M-Instruct", stage
        assert "text-generation" not in trained.text, stage
    card = ModelCard.load(outputs / "eval" / "model_card" / "README.md")  # evaluation writes only under its output_dir
    results = card.data.eval_results or []
    assert {result.dataset_type for result in results} == {"fixture/pope", "fixture/mmstar"}
    assert all(isinstance(result.metric_value, float) for result in results)
    # The transfer stored image_mean (packaged photographs), so evaluation's `image` mean mode ran, not skipped.
    scored = json.loads((outputs / "eval" / "results.json").read_text())
    image_mode = [row for row in scored["results"] if row["mean_mode"] == "image"]
    assert image_mode and not any("skipped" in row for row in image_mode)


def test_sees_stage_scores_sighted_and_blind_and_fills_the_card(quickstart_run):
    config, _ = quickstart_run
    outputs = Path(yaml.safe_load(config.read_text())["summary_file"]).parent
    results = json.loads((outputs / "sees" / "results.json").read_text())
    assert set(results["summary"]) == {"sighted", "blind_zero", "blind_shuffled"}
    assert results["num_questions"] == 2 * results["num_images"] == 16
    gap = results["summary"]["blind_zero"]["sighted_minus_this"]
    assert gap["low"] <= gap["difference"] <= gap["high"]
    assert results["sees_image"] == (gap["low"] > 0)  # a mechanics check: the trimmed model is not expected to see
    card = (outputs / "eval" / "model_card" / "README.md").read_text()
    assert "## Does it see?" in card and "| sighted |" in card and "Not measured yet" not in card


def test_the_ladder_probes_the_pretrained_and_the_fine_tuned_checkpoint(quickstart_run, tmp_path):
    """recipes/ladder.py end to end on the trimmed run's checkpoints, with the concept-title recipe's rules: the
    pretraining form ranks candidates (raw, calibrated), the SFT form asks the mc and yes/no questions and probes
    its training dialogues blind, by letter and in the cloze formulation; every rung sits on the same held-out
    pairs."""
    config, _ = quickstart_run
    outputs = Path(yaml.safe_load(config.read_text())["summary_file"]).parent
    shipped = yaml.safe_load((REPO / "recipes" / "concept_titles" / "ladder.yaml").read_text())
    shipped.update(encoder_config=str(config.parent / "encoder.yaml"), encoder_dir=str(outputs / "encoder"),
                   num_images=6, batch_size=8, bootstrap_resamples=100)  # fmt: skip
    forms = {
        "pretrain": {},
        "sft": {"questions_path": str(outputs / "text"), "max_new_tokens": 2,
                "training_dialogues_path": str(outputs / "transfer"), "training_probe_rows": 4, "mc_cloze": True,
                "title_in_prompt": "The image shows {title}."},
    }  # fmt: skip
    rungs = {"encoder", "text", "blind/shuffled", "blind/zero", "blind/null"}
    rungs |= {f"image/{rule['name']}" for rule in shipped["image_rules"]}
    for form, extra in forms.items():
        ladder_config = tmp_path / f"{form}.yaml"
        output_dir = tmp_path / form
        ladder_config.write_text(yaml.safe_dump(
            {**shipped, "model_name_or_path": str(outputs / form), "output_dir": str(output_dir), **extra}
        ))  # fmt: skip
        result = subprocess.run([sys.executable, str(REPO / "recipes" / "ladder.py"), "--config", str(ladder_config)],
                                cwd=REPO, capture_output=True, text=True, timeout=900, check=False)  # fmt: skip
        assert result.returncode == 0, result.stderr[-3000:]
        ladder = json.loads((output_dir / "ladder.json").read_text())
        told = {"title_in_prompt"} if form == "sft" else set()  # the questions with the title written in the prompt
        assert set(ladder["summary"]) == rungs | told and ladder["num_items"] == 6
        for rung, credit in ladder["per_item"]["credit"].items():
            assert all(len(values) == 6 for values in credit.values()), rung
        assert (output_dir / "ladder.png").is_file() and "| image/memory_projection |" in (
            output_dir / "ladder.md"
        ).read_text()
    pretrain = json.loads((tmp_path / "pretrain" / "ladder.json").read_text())
    assert set(pretrain["summary"]["image/eval_mean"]) == {"raw", "calibrated"} and pretrain["chance"] == 0.25
    sft = json.loads((tmp_path / "sft" / "ladder.json").read_text())
    assert set(sft["summary"]["text"]) == {
        "mc", "mc_generation", "yes_no", "yes_no_generation", "mc_cloze", "mc_cloze_calibrated",
    }  # fmt: skip
    assert set(sft["summary"]["encoder"]) == {"mc", "yes_no"} and sft["chance"] == {"mc": 0.25, "yes_no": 0.5}
    assert set(sft["per_item"]["chosen_by_first_token"]["text"]) == {"mc", "yes_no"}
    assert 0.25 <= sft["answer_concentration"]["text"]["mc"]["share"] <= 1.0
    probe = sft["training_dialogues"]
    assert probe["rows"] == 4 and probe["chance"] == 0.25
    scorings, controls = ("", "_cloze", "_cloze_calibrated"), ("own", "shuffled", "zero")
    assert {f"accuracy{scoring}_{control}" for scoring in scorings for control in controls} <= set(probe)
    assert probe["yes_no"]["chance"] == 0.5 and probe["yes_no"]["rows"] > 0  # pair_text asks yes/no on its own


def test_rerun_skips_finished_stages(quickstart_run):
    config, _ = quickstart_run
    again = run_stages(config, cwd=REPO)
    assert again.returncode == 0, again.stderr[-3000:]
    recipe = yaml.safe_load(config.read_text())
    summary = json.loads(Path(recipe["summary_file"]).read_text())
    assert all(stage["seconds"] is None for stage in summary["stages"])  # None = skipped, finished earlier
    assert again.stdout.count("skipping") + again.stderr.count("skipping") == len(recipe["stages"])


def test_nothing_written_holds_a_path_of_this_machine(quickstart_run):
    """Issue 15: the trimmed run reads and writes absolute paths (the recipe, the outputs and the checkout's seed
    file), yet no text file of any stage names the run's folder, the checkout, the environment or the model cache."""
    config, _ = quickstart_run
    outputs = Path(yaml.safe_load(config.read_text())["summary_file"]).parent
    machine = {str(config.parent.parent.resolve()), str(REPO), sys.prefix, str(Path.home() / ".cache")}
    offenders = []
    for path in sorted(outputs.rglob("*")):
        # distilabel's own resume cache (inside a synthesis output_dir, never published) records its absolute paths
        if path.is_file() and path.suffix in TEXT_SUFFIXES and ".distilabel_cache" not in path.parts:
            text = path.read_text(errors="replace")
            offenders += [f"{path.relative_to(outputs)}: {place}" for place in sorted(machine) if place in text]
    assert not offenders, "\n".join(offenders)


def test_checkpoint_loads_from_a_copy_after_the_original_moves_away(quickstart_run, tmp_path):
    """The SFT checkpoint copied to another clone (its encoder folder beside it, at `<checkpoint>/encoder`, where
    evaluation finds it by content) answers about a real image once the original outputs have moved away. Runs last:
    it moves the module's outputs and puts them back."""
    from unicorn_hf.evaluation.inference import UnicornImageQA
    from unicorn_hf.utils.assets import load_photograph

    config, _ = quickstart_run
    outputs = Path(yaml.safe_load(config.read_text())["summary_file"]).parent
    copy = shutil.copytree(outputs / "sft", tmp_path / "clone" / "sft")
    shutil.copytree(outputs / "encoder", copy / "encoder")
    moved = outputs.with_name(f"{outputs.name}-moved-away")
    outputs.rename(moved)
    try:
        qa = UnicornImageQA.from_pretrained(copy, device="cpu", dtype="float32", encoder_batch_size=2)
        assert qa.encoder.id == qa.model.config.encoder_id and qa.encoder.local_path == (copy / "encoder").resolve()
        (answer,) = qa.answer(
            [load_photograph("chelsea")], ["What is shown?"], mean="text", batch_size=1, max_new_tokens=4
        )
        assert isinstance(answer, str)
    finally:
        moved.rename(outputs)
