"""Paths in what a stage writes: never a path of the machine it ran on.

A record (`transfer_run.json`, `unicorn_training.json`, a `config.json`, a card) names the files and folders a stage
read as the user wrote them, so that a folder copied to another clone, or read on another machine, says the same
thing and holds nothing of the first one. `portable_path` turns one path into that form:

- a relative path, a Hub id or a `pkg://` name: unchanged (relative paths are relative to the working directory, as
  the user wrote them);
- an absolute path inside the working directory: relative to it (what the user could have written);
- the folder the record is written into, or a path inside it: `<output_dir>`, `<output_dir>/checkpoint-2`;
- any other absolute path (another tree of the machine): its name and the sha256 of its content,
  `name@sha256:<16 hex>`, as the encoder spec names a local encoder, so that a record still tells two inputs apart;
- a spec with scheme prefixes before an absolute path (`local-dir:/...`, `open_clip:local-dir:/...`): the prefixes
  stay and the path is made portable as above.

`portable_record` applies it to every absolute path in a JSON-like record, `portable_command` to a command line.
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
from collections.abc import Sequence
from pathlib import Path


OUTPUT_DIR_MARKER = "<output_dir>"  # the folder the record is written into
# A spec that names a path behind scheme prefixes, e.g. an encoder `local-dir:/abs/encoder` or
# `open_clip:local-dir:/abs/encoder` (not a URL): the prefixes stay, the path is made portable.
_PREFIXED_PATH = re.compile(r"^((?:[A-Za-z][\w.+-]*:)+)(/\S*|~/\S*)$")
_FINGERPRINT_CHARS = 16  # as in the encoder's id; enough to tell two files apart in a record
_CHUNK = 1 << 20


def _is_absolute_path(text: str) -> bool:
    """True for a string that is an absolute (or `~`) path of this machine, not a Hub id, URL or free text."""
    if not text or "://" in text or any(char.isspace() for char in text):
        return False
    return os.path.isabs(text) or text == "~" or text.startswith("~/")


def _is_prefixed_path(text: str) -> bool:
    """True for a spec such as `local-dir:/abs/encoder`: scheme prefixes, then an absolute path (not a URL)."""
    return "://" not in text and _PREFIXED_PATH.match(text) is not None


def hash_file(digest, path: Path, name: str) -> None:
    """Feed `name` and then the bytes of the file at `path` (read in 1 MiB chunks) into a hashlib `digest`: the one
    way a file enters every content fingerprint (records here, encoder specs in `unicorn_hf.encoders.spec`)."""
    digest.update(name.encode())
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)


def content_fingerprint(path: Path) -> str:
    """sha256 over a file's bytes, or over a folder's files (relative name and bytes, in name order)."""
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for file in files:
        hash_file(digest, file, file.name if file == path else file.relative_to(path).as_posix())
    return digest.hexdigest()


def portable_path(path: str | os.PathLike, start: str | os.PathLike) -> str:
    """`path` as a record stores it (see the module docstring); `start` is the folder the record is written into."""
    text = os.fspath(path)
    if _is_prefixed_path(text):
        prefixed = _PREFIXED_PATH.match(text)
        return prefixed.group(1) + portable_path(prefixed.group(2), start)
    if not _is_absolute_path(text):
        return text
    absolute = Path(text).expanduser().resolve()
    cwd = Path.cwd().resolve()
    if absolute.is_relative_to(cwd):
        return absolute.relative_to(cwd).as_posix()
    start = Path(start).expanduser().resolve()
    if absolute == start:
        return OUTPUT_DIR_MARKER
    if absolute.is_relative_to(start):
        return f"{OUTPUT_DIR_MARKER}/{absolute.relative_to(start).as_posix()}"
    if absolute.exists():
        return f"{absolute.name}@sha256:{content_fingerprint(absolute)[:_FINGERPRINT_CHARS]}"
    return absolute.name


def resolve_recorded_path(recorded: str, record_dir: str | os.PathLike) -> Path:
    """The inverse a reader needs: a path as a record stores it, resolved on this machine. `<output_dir>/...` is
    resolved against `record_dir` (the folder holding the record); a relative path against the working directory, as
    it was written. Raises `ValueError` for a `name@sha256:...` entry, which names content, not a place."""
    if "@sha256:" in recorded:
        raise ValueError(f"{recorded!r} names a file by its content, not by a path this machine can open")
    if recorded == OUTPUT_DIR_MARKER or recorded.startswith(f"{OUTPUT_DIR_MARKER}/"):
        return Path(record_dir) / recorded[len(OUTPUT_DIR_MARKER) :].lstrip("/")
    return Path(recorded)


def portable_record(record, start: str | os.PathLike):
    """A copy of a JSON-like record (dicts, lists, tuples, strings) with every absolute path made portable."""
    if isinstance(record, dict):
        return {key: portable_record(value, start) for key, value in record.items()}
    if isinstance(record, list | tuple):
        return [portable_record(value, start) for value in record]
    if isinstance(record, str | os.PathLike) and not isinstance(record, str):
        record = os.fspath(record)
    if isinstance(record, str) and (_is_absolute_path(record) or _is_prefixed_path(record)):
        return portable_path(record, start)
    return record


def portable_command(argv: Sequence[str], start: str | os.PathLike) -> str:
    """A command line (shell-quoted) with absolute paths made portable, `--flag=/path` forms included."""
    words = []
    for word in argv:
        flag, equals, value = word.partition("=")
        if equals and flag.startswith("-") and _is_absolute_path(value):
            words.append(f"{flag}={portable_path(value, start)}")
        else:
            words.append(portable_path(word, start) if _is_absolute_path(word) else word)
    return shlex.join(words)


__all__ = [
    "OUTPUT_DIR_MARKER",
    "content_fingerprint",
    "hash_file",
    "portable_command",
    "portable_path",
    "portable_record",
]
