"""Prompts live in `.txt` files (Jinja templates), never in code: the package ships the defaults in `prompts/`."""

from __future__ import annotations

from pathlib import Path


PROMPTS_DIR = Path(__file__).parent / "prompts"


def prompt_path(name_or_path: str) -> Path:
    """A path as given when it exists, else a file shipped in `unicorn_hf/synthesis/prompts/`."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    if (PROMPTS_DIR / name_or_path).is_file():
        return PROMPTS_DIR / name_or_path
    shipped = sorted(p.name for p in PROMPTS_DIR.glob("*.txt"))
    raise FileNotFoundError(f"Prompt file {name_or_path!r} not found (neither a path nor one of {shipped})")


def load_prompt(name_or_path: str) -> str:
    text = prompt_path(name_or_path).read_text().strip()
    if not text:
        raise ValueError(f"Prompt file {name_or_path!r} is empty")
    return text
