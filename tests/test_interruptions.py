"""Interrupted synthesis stages, run exactly as a user runs them (a recipe script in its own process group).

A stage killed with SIGKILL leaves no step worker behind; a stage stopped with Ctrl-C (SIGINT) exits non-zero and
writes no dataset folder; in both cases running the same command again finishes and generates only the rows the
interrupted run did not finish (distilabel's own resume hangs here: argilla-io/distilabel#1065). The LLM is
`EchoLLM` (tests/helpers/synthesis_stage.py), slowed down so that the run can be interrupted between batches.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from datasets import Dataset

from unicorn_hf.synthesis.cards import CACHE_DIRNAME
from unicorn_hf.synthesis.pipelines import finished_rows
from unicorn_hf.utils.hub import configs_metadata, load_dataset_folder, write_card, write_dataset_config


pytestmark = pytest.mark.interruption

REPO = Path(__file__).resolve().parents[1]
DRIVER = REPO / "tests" / "helpers" / "synthesis_stage.py"
TINY = REPO / "recipes" / "tiny"
SECRET = "hf_PLANTEDinterruptionTest0123456789"
# A reply every task but `mc` accepts (mc needs options): stage 2 keeps some dialogues whatever the assignment.
QA_REPLY = '{"conversations": [{"question": "What color is the bus?", "answer": "The bus is red."}]}'
RUN_TIMEOUT_S = 240


def stage_env(tmp_path: Path, delay_s: float, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(REPO),  # this checkout's package, also where another one is installed in the venv
        "OMP_NUM_THREADS": "1",
        "HF_HUB_OFFLINE": "1",
        "HF_TOKEN": SECRET,
        "ECHO_DELAY_S": str(delay_s),
        "ECHO_CALLS": str(tmp_path / "calls.jsonl"),
        **extra,
    }


def start(stage: str, argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    """The stage in its own process group (as a shell job), output to `log`."""
    handle = log.open("w")
    return subprocess.Popen(
        [sys.executable, str(DRIVER), stage, *argv], env=env, stdout=handle, stderr=subprocess.STDOUT,
        start_new_session=True, cwd=REPO,
    )  # fmt: skip


def wait_for_batch(process: subprocess.Popen, cache_dir: Path, step: str, seq_no: int, log: Path) -> None:
    """Block until `step` has finished batch `seq_no` (distilabel wrote it to steps_data)."""
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while not list(cache_dir.glob(f"*/steps_data/{step}_*/batch_{seq_no}.json")):
        if process.poll() is not None:
            pytest.fail(f"the stage ended (rc {process.returncode}) before batch {seq_no}:\n{log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"batch {seq_no} never appeared:\n{log.read_text()[-3000:]}")
        time.sleep(0.05)


def live_processes(group: int) -> list[psutil.Process]:
    """Processes of process group `group` that still run (zombies are dead, only not reaped yet)."""
    alive = []
    for process in psutil.process_iter(["pid", "status"]):
        try:
            if os.getpgid(process.pid) == group and process.info["status"] != psutil.STATUS_ZOMBIE:
                alive.append(process)
        except (ProcessLookupError, psutil.NoSuchProcess):
            continue
    return alive


def wait_group_gone(group: int, timeout_s: float = 15.0) -> list[psutil.Process]:
    deadline = time.monotonic() + timeout_s
    while (alive := live_processes(group)) and time.monotonic() < deadline:
        time.sleep(0.1)
    for process in alive:  # do not leave them running whatever the assertion says
        process.kill()
    return alive


def num_calls(tmp_path: Path) -> int:
    path = tmp_path / "calls.jsonl"
    return len(path.read_text().splitlines()) if path.is_file() else 0


def finished(cache_dir: Path, step: str) -> int:
    """Rows of `step` finished so far, over every pipeline name in the stage's cache."""
    return sum(len(finished_rows(cache_dir, folder.name, step)) for folder in cache_dir.iterdir() if folder.is_dir())


def assert_no_secret(folder: Path, *texts: str) -> None:
    """The planted token is in no file under `folder` (bytes, so binary files count too) and in no output."""
    leaks = [str(path) for path in folder.rglob("*") if path.is_file() and SECRET.encode() in path.read_bytes()]
    assert not leaks, f"the planted HF_TOKEN is written in {leaks}"
    assert all(SECRET not in text for text in texts), "the planted HF_TOKEN is in the log"


def rerun(stage: str, argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(DRIVER), stage, *argv], env=env, capture_output=True, text=True,
        timeout=RUN_TIMEOUT_S, cwd=REPO,
    )  # fmt: skip


def captions_argv(output_dir: Path) -> list[str]:
    """The tiny recipe's stage 1 (6 seeds) in batches of 2; it runs from the repository root, as the YAML expects."""
    return ["--config", str(TINY / "captions.yaml"), "--input_batch_size", "2", "--output_dir", str(output_dir)]


def test_captions_sigkill_leaves_no_worker_and_the_rerun_generates_only_the_rest(tmp_path):
    output_dir, log = tmp_path / "captions", tmp_path / "first.log"
    cache_dir = output_dir / CACHE_DIRNAME
    argv = captions_argv(output_dir)
    process = start("captions", argv, stage_env(tmp_path, delay_s=1.0), log)
    wait_for_batch(process, cache_dir, "expand_caption", 1, log)
    os.kill(process.pid, signal.SIGKILL)  # the main process only, as an OOM kill does: its workers must follow
    process.wait()
    assert not wait_group_gone(process.pid), "step workers outlived the killed stage"
    assert not (output_dir / "README.md").exists() and not (output_dir / "captions").exists()
    done, before = finished(cache_dir, "expand_caption"), num_calls(tmp_path)
    assert 4 <= done < 6  # batches 0 and 1 (2 rows each) finished, the last one did not

    result = rerun("captions", argv, stage_env(tmp_path, delay_s=0.0))
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert f"{done} of 6 row(s) were generated by an earlier run" in result.stdout
    assert num_calls(tmp_path) - before == 6 - done  # only the rows the killed run did not finish
    summary = json.loads((output_dir / "summary.json").read_text())
    assert summary["drops"][1]["rows_in"] == 6 and "no_generation" not in summary["drops"][1]["dropped"]
    assert len(load_dataset_folder(output_dir, "captions")) == summary["rows"]
    assert_no_secret(output_dir, result.stdout, result.stderr, log.read_text())


def test_captions_ctrl_c_exits_nonzero_writes_nothing_and_resumes(tmp_path):
    output_dir, log = tmp_path / "captions", tmp_path / "first.log"
    cache_dir = output_dir / CACHE_DIRNAME
    argv = captions_argv(output_dir)
    process = start("captions", argv, stage_env(tmp_path, delay_s=1.0), log)
    wait_for_batch(process, cache_dir, "expand_caption", 0, log)
    os.killpg(process.pid, signal.SIGINT)  # Ctrl-C in a terminal signals the whole foreground group
    assert process.wait(timeout=RUN_TIMEOUT_S) != 0
    assert "StageInterrupted" in log.read_text() and "run the same command again" in log.read_text()
    assert not wait_group_gone(process.pid)
    assert not (output_dir / "README.md").exists() and not (output_dir / "captions").exists()
    done, before = finished(cache_dir, "expand_caption"), num_calls(tmp_path)
    assert 2 <= done < 6

    result = rerun("captions", argv, stage_env(tmp_path, delay_s=0.0))
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert num_calls(tmp_path) - before == 6 - done
    assert json.loads((output_dir / "summary.json").read_text())["drops"][1]["rows_in"] == 6


def test_instructions_sigkill_of_the_group_and_the_rerun_finishes(tmp_path):
    captions = [{"id": f"c{i}", "seed": "s", "seed_source": "t", "caption": f"A red bus number {i} at a corner.",
                 "model_name": "m"} for i in range(6)]  # fmt: skip
    captions_dir = tmp_path / "captions"
    write_dataset_config(Dataset.from_list(captions), captions_dir, "captions")
    write_card(captions_dir, {"configs": configs_metadata(["captions"])}, "test captions")
    output_dir, log = tmp_path / "instructions", tmp_path / "first.log"
    cache_dir = output_dir / CACHE_DIRNAME
    argv = ["--config", str(TINY / "instructions.yaml"), "--captions_dataset", str(captions_dir), "--output_dir",
            str(output_dir), "--num_dialogues", "6", "--max_repairs", "0", "--input_batch_size", "2"]  # fmt: skip
    process = start("instructions", argv, stage_env(tmp_path, delay_s=1.0, ECHO_REPLY=QA_REPLY), log)
    wait_for_batch(process, cache_dir, "generate_dialogue", 1, log)
    os.killpg(process.pid, signal.SIGKILL)  # the reproduction: the whole group at once
    process.wait()
    assert not wait_group_gone(process.pid)
    done, before = finished(cache_dir, "generate_dialogue"), num_calls(tmp_path)
    assert 4 <= done < 6

    result = rerun("instructions", argv, stage_env(tmp_path, delay_s=0.0, ECHO_REPLY=QA_REPLY))
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert num_calls(tmp_path) - before == 6 - done
    (drops,) = json.loads((output_dir / "summary.json").read_text())["drops"]
    assert drops["rows_in"] == 6 and drops["rows_out"] == len(load_dataset_folder(output_dir, "instructions"))
    assert_no_secret(output_dir, result.stdout, result.stderr, log.read_text())
