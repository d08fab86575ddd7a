"""Children die with the process that started them: multiprocessing workers forked inside
`children_die_with_parent()` (distilabel's step workers), `subprocess` children started with
`parent_death_signal()` (the quickstart's stages) and training scripts that call `die_with_launcher()` under
`accelerate launch`, when that process is killed with SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest


REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux only")

# A sleeping child, not a pool worker: an idle pool worker exits by itself when its task pipe breaks, while
# distilabel's workers wait on a queue served by the (also forked) manager process and so never notice.
FORKED = """
    import multiprocessing, time
    from unicorn_hf.utils.processes import children_die_with_parent

    with children_die_with_parent():
        child = multiprocessing.Process(target=time.sleep, args=(120,))
        child.start()
    print(child.pid, flush=True)
    time.sleep(120)
"""
# A training script under `accelerate launch`: the launcher starts it with a plain subprocess and sets ACCELERATE_*;
# the script reports its pid once `die_with_launcher()` has run (the request covers the time after the call).
LAUNCHED = """
    import os, subprocess, sys, time

    script = ("import os, time; from unicorn_hf.utils.processes import die_with_launcher; assert die_with_launcher(); "
              "print(os.getpid(), flush=True); time.sleep(120)")
    env = {**os.environ, "ACCELERATE_MIXED_PRECISION": "no"}
    child = subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, text=True)
    print(child.stdout.readline().strip(), flush=True)
    time.sleep(120)
"""
SUBPROCESS = """
    import subprocess, time
    from unicorn_hf.utils.processes import parent_death_signal

    child = subprocess.Popen(["sleep", "120"], preexec_fn=parent_death_signal())
    print(child.pid, flush=True)
    time.sleep(120)
"""


def child_of_killed_parent(script: str) -> psutil.Process | None:
    """Start `script` (prints one child's pid), SIGKILL it, and return the child if it is still running."""
    parent = subprocess.Popen([sys.executable, "-c", textwrap.dedent(script)], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(REPO)})  # fmt: skip
    child = psutil.Process(int(parent.stdout.readline()))
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            if child.status() == psutil.STATUS_ZOMBIE:
                return None
        except psutil.NoSuchProcess:
            return None
        time.sleep(0.05)
    child.kill()  # never leave it running, whatever the assertion says
    return child


@pytest.mark.parametrize(
    "script", [FORKED, SUBPROCESS, LAUNCHED], ids=["multiprocessing-child", "subprocess-child", "launched-script"]
)
def test_a_child_does_not_outlive_its_killed_parent(script):
    assert child_of_killed_parent(script) is None


def test_outside_the_block_children_are_left_alone():
    """The registration ends with the block: a child started after it is not tied to its parent's life."""
    block = "with children_die_with_parent():"
    script = FORKED.replace(block, f"{block}\n        pass\n    if True:")  # the same child, after the block
    orphan = child_of_killed_parent(script)
    assert orphan is not None  # (and child_of_killed_parent killed it)
