"""Child processes that do not outlive the process that started them.

distilabel's local pipeline forks a `multiprocessing` manager and one pool worker per step replica. When the stage's
main process is killed (SIGKILL, an OOM kill, a closed terminal without job control), nothing stops them: the
generation worker keeps running its batch, holding the CPUs or the GPU, and writes into a cache that a re-run is
reading. On Linux the kernel can deliver a signal to a process when its parent dies (`PR_SET_PDEATHSIG`); this
module asks for it in every child that `multiprocessing` forks while `children_die_with_parent()` is active, and
in a `subprocess` child started with `preexec_fn=parent_death_signal()` (the quickstart's stage processes).
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import multiprocessing.util
import os
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager


logger = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


class _Registration:
    """The key object of one `register_after_fork` entry: the registry holds it weakly, so the entry lives exactly
    as long as the `children_die_with_parent()` block that created it."""


def _request_death_signal() -> bool:
    """In a child: ask the kernel for SIGKILL when the parent dies. False where the call failed."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        logger.warning("prctl(PR_SET_PDEATHSIG) failed (errno %d): this child may outlive its parent",
                       ctypes.get_errno())  # fmt: skip
        return False
    return True


def _die_with_parent(_: _Registration) -> None:
    """Runs in the forked child: request the signal, and exit at once if the parent already died between the fork
    and this call (the signal would then never come)."""
    parent = multiprocessing.parent_process()
    if _request_death_signal() and parent is not None and os.getppid() != parent.pid:
        os._exit(1)


@contextmanager
def children_die_with_parent() -> Iterator[None]:
    """Within the block, every child forked by `multiprocessing` (pool workers, managers, and their own forked
    children) is killed by the kernel when the process that forked it dies. Linux only; elsewhere a no-op."""
    if not sys.platform.startswith("linux"):
        yield
        return
    registration = _Registration()
    multiprocessing.util.register_after_fork(registration, _die_with_parent)
    try:
        yield
    finally:
        del registration  # drops the weakly held registry entry: later forks are left alone


def parent_death_signal() -> Callable[[], None] | None:
    """A `preexec_fn` for `subprocess` that makes the child (and the program it executes: the request survives
    `exec`) get SIGKILL when this process dies. None off Linux. Call it in the thread that starts the child."""
    if not sys.platform.startswith("linux"):
        return None
    parent = os.getpid()

    def preexec() -> None:
        if _request_death_signal() and os.getppid() != parent:
            os._exit(1)

    return preexec


# Set by `accelerate launch` (its simple launcher) and by torchrun (accelerate's multi-GPU launcher) in the
# environment of every process they start.
LAUNCHER_ENV_VARS = ("ACCELERATE_MIXED_PRECISION", "LOCAL_RANK")


def die_with_launcher() -> bool:
    """In a training script: when `accelerate launch` or torchrun started this process, be killed when that
    launcher dies. Both start the script with a plain subprocess, so a launcher killed alone (SIGKILL, an OOM kill,
    a killed quickstart) leaves the training running into its output_dir. Returns whether the request was made."""
    if not sys.platform.startswith("linux") or not any(name in os.environ for name in LAUNCHER_ENV_VARS):
        return False
    return _request_death_signal()
