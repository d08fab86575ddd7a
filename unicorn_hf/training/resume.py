"""Which checkpoint a training run resumes from: the newest *complete* `checkpoint-*` in `output_dir`.

transformers' `get_last_checkpoint` returns the highest-numbered `checkpoint-*` folder whatever it holds, so a run
killed while saving (the folder holds only a temporary file) makes every re-run fail with "Can't find a valid
checkpoint" although the previous checkpoint is complete. The Trainer writes `trainer_state.json` last
(`Trainer._save_checkpoint`: model, optimizer, scheduler, RNG states, then the state), so a checkpoint whose state
file is missing or unreadable was cut short and is skipped, with the reason in the log.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from transformers.trainer import TRAINER_STATE_NAME
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, sort_checkpoints


logger = logging.getLogger(__name__)


def incomplete_reason(checkpoint: str | Path) -> str | None:
    """Why `checkpoint` cannot be resumed from (None when it is complete)."""
    state = Path(checkpoint) / TRAINER_STATE_NAME
    if not state.is_file():
        return f"it has no {TRAINER_STATE_NAME}, which the Trainer writes last: the run stopped while saving it"
    try:
        json.loads(state.read_text())["global_step"]
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        return f"its {TRAINER_STATE_NAME} is unreadable ({error}): the run stopped while writing it"
    return None


def last_complete_checkpoint(output_dir: str | Path) -> str | None:
    """The highest-step complete `checkpoint-*` in `output_dir`; each newer, incomplete one is skipped with a
    warning that names it and says why."""
    for checkpoint in reversed(sort_checkpoints(str(output_dir), checkpoint_prefix=PREFIX_CHECKPOINT_DIR)):
        reason = incomplete_reason(checkpoint)
        if reason is None:
            return checkpoint
        logger.warning("Not resuming from %s: %s. Trying the previous checkpoint.", checkpoint, reason)
    return None


def checkpoint_to_resume(training_args) -> str | None:
    """`resume_from_checkpoint` when given (it must be complete), else the newest complete `checkpoint-*` in
    `output_dir`, so that a re-run of the same command continues where the last one stopped."""
    if training_args.resume_from_checkpoint:
        reason = incomplete_reason(training_args.resume_from_checkpoint)
        if reason is not None:
            raise ValueError(f"resume_from_checkpoint={training_args.resume_from_checkpoint}: cannot resume, {reason}")
        return training_args.resume_from_checkpoint
    if not os.path.isdir(training_args.output_dir):
        return None
    last = last_complete_checkpoint(training_args.output_dir)
    if last is not None:
        logger.info("Resuming from %s (the newest complete checkpoint in output_dir); delete it to start over.", last)
    return last
