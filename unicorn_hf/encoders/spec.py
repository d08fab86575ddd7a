"""What a paired encoder is: `EncoderSpec`, the one place its id is written, and the content fingerprints that
identify a local encoder without naming a path of this machine.

A spec is what the transfer statistics, the dataset card and the trained model's config store (`encoder`), and what
`unicorn_hf.encoders.load_encoder_from_spec` rebuilds the encoder from. A local folder or weights file is identified
by its name and a fingerprint of its content (so a copied checkpoint, or a second clone holding the same encoder,
finds and accepts it), plus the relative path the recipe gave as a hint. `EncoderSpec.id` is the short, path-free
string form, used to refuse mixing embeddings of two encoders; it is written here and never parsed back.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from unicorn_hf.utils.paths import hash_file


LOCAL_DIR_PREFIX = "local-dir:"
HF_PREFIX = "hf:"
LLM2CLIP_PREFIX = "llm2clip:"
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")


# open_clip configs of folders built from a transformers text tower name that tower by a path (the project's own
# encoder writes ".", the folder itself; folders written before named their absolute path): it is not part of what
# the encoder *is*, so it is left out of the fingerprint and re-pointed at the folder on load.
_PATH_FIELDS = ("hf_model_name", "hf_tokenizer_name")
_FINGERPRINT_CHARS = 16  # shown in ids; the spec keeps the full sha256


@dataclass(frozen=True)
class EncoderSpec:
    """What a paired encoder is, as stored in `transfer_stats.json`, dataset cards and `config.json` (`encoder`).

    Args:
        library: "open_clip", "hf" (transformers CLIP/SigLIP) or "llm2clip".
        name: open_clip architecture (`ViT-B-32`, `hf-hub:org/repo`), Hub id, or for a local folder its folder name.
        pretrained: open_clip pretrained tag, or the file name of a local weights file.
        init_seed: seed of a random-init encoder (no weights): the mechanics only.
        fingerprint: sha256 of a local folder's / file's weights and architecture; what identifies a local encoder.
        location: the path the recipe gave for a local encoder, kept only when relative (a hint where to look).
        text_model: llm2clip only, the LLM2Vec caption encoder.
    """

    library: str
    name: str
    pretrained: str | None = None
    init_seed: int | None = None
    fingerprint: str | None = None
    location: str | None = None
    text_model: str | None = None

    @property
    def is_local(self) -> bool:
        return self.fingerprint is not None

    @property
    def id(self) -> str:
        """Stable, path-free string form: equal for the same encoder wherever its files are and whatever the folder
        is called (a local encoder is named by its content only; its folder name stays in the spec)."""
        digest = f"@sha256:{self.fingerprint[:_FINGERPRINT_CHARS]}" if self.fingerprint else ""
        if self.library == "llm2clip":
            base = f"llm2clip:{self.name}{digest}+{self.text_model}"
        elif self.library == "hf":
            base = f"hf:local-dir{digest}" if self.is_local else f"hf:{self.name}"
        elif self.is_local and self.pretrained is None:  # an open_clip `local-dir:` folder
            base = f"open_clip:local-dir{digest}"
        elif self.is_local:  # an open_clip architecture with a local weights file
            base = f"open_clip:{self.name}/file{digest}"
        else:
            base = f"open_clip:{self.name}" + (f"/{self.pretrained}" if self.pretrained else "")
        return base + (f"#random-init-seed{self.init_seed}" if self.init_seed is not None else "")

    def to_dict(self) -> dict:
        return {**asdict(self), "id": self.id}

    @classmethod
    def from_dict(cls, data: dict) -> EncoderSpec:
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in known})


def relative_hint(given: str | Path) -> str | None:
    """The path as the recipe gave it when relative (e.g. `outputs/tiny/encoder`); an absolute path names this
    machine, so it is not kept."""
    path = Path(given)
    return None if path.is_absolute() or str(given).startswith("~") else path.as_posix()


def fingerprint_open_clip_folder(folder: Path) -> str:
    """sha256 of an open_clip folder's architecture (`model_cfg` without path fields) and its weight files."""
    digest = hashlib.sha256()
    config = json.loads((folder / "open_clip_config.json").read_text())
    model_cfg = json.loads(json.dumps(config.get("model_cfg", config)))
    for tower in model_cfg.values():
        if isinstance(tower, dict):
            for key in _PATH_FIELDS:
                tower.pop(key, None)
    digest.update(json.dumps(model_cfg, sort_keys=True).encode())
    for path in sorted(p for p in folder.iterdir() if p.suffix in WEIGHT_SUFFIXES):
        hash_file(digest, path, path.name)
    return digest.hexdigest()


def fingerprint_files(paths: Iterable[Path]) -> str:
    """sha256 over files (name and bytes), in name order: a weights file, or a transformers folder's weights+config."""
    digest = hashlib.sha256()
    for path in sorted(paths, key=lambda p: p.name):
        hash_file(digest, path, path.name)
    return digest.hexdigest()


def fingerprint_hf_folder(folder: Path) -> str:
    return fingerprint_files(p for p in folder.iterdir() if p.suffix in WEIGHT_SUFFIXES or p.name == "config.json")
