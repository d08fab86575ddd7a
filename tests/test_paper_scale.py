"""The paper-scale estimate's arithmetic against a hand computation (bench/paper_scale.py)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest


SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "paper_scale.py"
CONFIG = Path(__file__).resolve().parents[1] / "recipes" / "unicorn-8b" / "scale.yaml"


@pytest.fixture(scope="module")
def paper_scale():
    spec = importlib.util.spec_from_file_location("paper_scale", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve string annotations through sys.modules
    spec.loader.exec_module(module)
    return module


def test_estimate_matches_hand_computation(paper_scale):
    (args,) = paper_scale.make_parser().parse_args_and_config(["--config", str(CONFIG)])
    measured = {"captions_measured": 6, "dialogues_measured": 3, "tokens_per_word": 1.5, "tokens_per_turn": 40.0,
                "caption_tokens": 1.5 * args.caption_words, "caption_prompt_tokens": 100.0,
                "dialogue_prompt_tokens": 300.0, "dialogue_tokens": 40.0 * args.dialogue_turns}  # fmt: skip
    rows = {quantity: value for quantity, value, _ in paper_scale.estimate(args, measured)}

    assert rows["API cost, paper's rate"] == f"${(args.num_captions + args.num_dialogues) * 0.0003:,.0f}"
    # Pretraining by hand: (4N frozen-LLM fwd+bwd + 2N recompute) x tokens / (GPUs x peak x MFU).
    tokens = args.num_captions * (args.num_image_tokens + 1.5 * args.caption_words)
    hours = 6 * args.llm_params * tokens / (args.num_gpus * args.gpu_peak_flops * args.mfu) / 3600
    assert rows["pretraining (frozen LLM, projector)"] == f"{hours:.1f} h"
    sft_tokens = args.num_dialogues * (args.num_image_tokens + 40.0 * args.dialogue_turns)
    sft_hours = 8 * args.llm_params * sft_tokens / (args.num_gpus * args.gpu_peak_flops * args.mfu) / 3600
    assert rows["SFT (full)"] == f"{sft_hours:.1f} h"
    assert rows["stage-2 requests at the 135M model's acceptance"].startswith(
        f"{args.num_dialogues / args.json_acceptance_small_model / 1e6:.2f}M"
    )


def test_missing_measurement_folder_is_a_clear_error(paper_scale, tmp_path):
    (args,) = paper_scale.make_parser().parse_args_and_config(["--config", str(CONFIG)])
    args.captions_dataset = str(tmp_path / "absent")
    with pytest.raises(FileNotFoundError, match="run `make quickstart` first"):
        paper_scale.main(args)
