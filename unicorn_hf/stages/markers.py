"""The one marker format of a finished stage, and the check that its settings did not change since.

Every stage that writes a folder (a recipe script run by `unicorn_hf.stages.runner`, or an in-process step of an
experiment such as `unicorn_hf.experiments.does_it_see`) leaves `.stage_done.json` in it when it finished:

    {"command": [...], "seconds": 12.3, "config_sha256": "...", "config": {...}, "finished_at": 1733561234.5}

Only `finished_at` is always there. `config_sha256` is the digest of the settings the stage ran with, which a re-run
compares before it skips the stage; `config` is those settings, kept only by a caller whose settings hold no path of
this machine (the experiment's, made portable with `unicorn_hf.utils.paths.portable_record`), so that a refusal can
name the keys that changed. The stage runner keeps the digest only: its YAMLs may name any path, and making them
portable would hash the content of every absolute path they name.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path


DONE_MARKER = ".stage_done.json"


def settings_digest(settings: dict) -> str:
    """sha256 of parsed settings (key order, comments and layout do not count): the marker's `config_sha256`."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()


def is_finished(folder: str | Path) -> bool:
    return (Path(folder) / DONE_MARKER).is_file()


def read_marker(folder: str | Path) -> dict:
    """The marker of a finished folder. Raises `FileNotFoundError` when the folder is not marked finished."""
    return json.loads((Path(folder) / DONE_MARKER).read_text())


def write_marker(
    folder: str | Path, record: dict | None = None, settings: dict | None = None, *, keep_settings: bool = True
) -> Path:
    """Mark `folder` finished: `record` (e.g. command, seconds) plus, when given, the digest of `settings` and, with
    `keep_settings`, the settings themselves (only for settings that hold no path of this machine)."""
    record = dict(record or {})
    if settings is not None:
        record["config_sha256"] = settings_digest(settings)
        if keep_settings:
            record["config"] = settings
    record["finished_at"] = time.time()
    path = Path(folder) / DONE_MARKER
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2, default=str) + "\n")
    return path


def changed_settings(marker: dict, settings: dict) -> list[str] | None:
    """None when `marker` was written with `settings`; else the keys whose value changed between the marker's
    `config` and `settings`, empty when the marker records only a digest. A marker with no digest at all predates
    recorded settings: it returns None too, and the caller says that it cannot tell."""
    if "config_sha256" not in marker or marker["config_sha256"] == settings_digest(settings):
        return None
    old = marker.get("config")
    if old is None:
        return []
    old = json.loads(json.dumps(old, default=str))
    new = json.loads(json.dumps(settings, default=str))
    return sorted(key for key in set(old) | set(new) if old.get(key) != new.get(key))
