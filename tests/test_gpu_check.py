"""scripts/gpu_check.py's mechanics on a CPU (`--smoke`: 2 layers, small vocabulary): both stages train, the parity
check compares CPU fp32 with bf16 autocast, the JSON report holds tokens/s. Its numbers need a GPU (README)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


REPO = Path(__file__).resolve().parents[1]


def test_gpu_check_smoke_on_cpu(tmp_path):
    output = tmp_path / "not_yet_made" / "gpu_check.json"  # the folder is made, as .gpu_check/ on a fresh machine
    command = [
        sys.executable, str(REPO / "scripts" / "gpu_check.py"), "--smoke", "--device", "cpu", "--batch_size", "2",
        "--parity_batch_size", "1", "--num_image_tokens", "8", "--embed_dim", "32", "--prompt_tokens", "4",
        "--answer_tokens", "8", "--steps", "1", "--warmup", "0", "--output", str(output),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(output.read_text())
    stages = {r["stage"]: r for r in report["results"]}
    assert set(stages) == {"pretrain", "sft"}
    assert stages["pretrain"]["trainable_parameters"] < stages["sft"]["trainable_parameters"]
    for r in stages.values():
        assert r["parity_ok"] and r["relative_difference"] < 1e-2 and r["tokens_per_second"] > 0
        assert r["batch"] == [2, 1 + 8 + 4 + 8]
