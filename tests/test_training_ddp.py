"""Two CPU processes (gloo DDP) run a few pretraining steps through the recipe script under `accelerate launch`.

accelerate 1.15's `--num_processes 2 --cpu` starts ONE process (its multi-CPU path goes through `mpirun` only), so
the launch is `--multi_gpu --num_processes 2` on the CPU config: torchrun starts two processes and `use_cpu`
(accelerate_configs/cpu.yaml and the tiny YAML) makes them a gloo process group.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from unicorn_fixtures.synthetic import write_synthetic_transfer_folder


ROOT = Path(__file__).resolve().parents[1]


def test_pretrain_ddp_two_cpu_processes(tiny_lm_path, tmp_path):
    data = write_synthetic_transfer_folder(
        tmp_path / "transfer", num_rows=8, embed_dim=16, encoder_id="test/enc", caption_words=8, seed=0
    )
    output_dir = tmp_path / "pretrain"
    command = [
        sys.executable, "-m", "accelerate.commands.launch",
        "--config_file", str(ROOT / "accelerate_configs" / "cpu.yaml"),
        "--multi_gpu", "--num_processes", "2",
        str(ROOT / "recipes" / "pretrain.py"),
        "--config", str(ROOT / "recipes" / "tiny" / "pretrain.yaml"),
        "--model_name_or_path", tiny_lm_path,
        "--dataset_name", str(data),
        "--output_dir", str(output_dir),
        "--max_steps", "2",
        "--per_device_train_batch_size", "2",
        "--logging_steps", "1",
    ]  # fmt: skip
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        "OMP_NUM_THREADS": "1",  # two processes on a small shared machine: no thread oversubscription
    }
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    record = json.loads((output_dir / "unicorn_training.json").read_text())
    assert record["hardware"]["num_processes"] == 2
    assert record["hyperparameters"]["global_batch_size"] == 4  # 2 per device x 1 accumulation x 2 processes
    assert record["results"]["global_step"] == 2
    assert (output_dir / "model.safetensors").is_file()
