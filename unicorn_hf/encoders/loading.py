"""Load a paired text/image encoder by spec string, or rebuild it from the `EncoderSpec` a dataset or checkpoint
stores.

    encoder = load_encoder("ViT-B-32", pretrained="laion2b_s34b_b79k", device="cuda", dtype="float16", batch_size=256)
    u = encoder.encode_text(["a photo of a cat"])  # [N, D] float32, L2-normalised
    w = encoder.encode_image([pil_image])  # [N, D] float32, L2-normalised

Specs taken by `load_encoder`:

- `<open_clip model name>` (built-in, or one of `model_configs/*.json` here) + `pretrained` (tag, checkpoint file,
  or None = random init, seeded by `init_seed`);
- `local-dir:/path`: an open_clip folder (`open_clip_config.json` + weights), e.g. the project's own encoder;
- `hf:<hub id or path>`: a transformers CLIP / SigLIP model (`get_text_features` / `get_image_features`);
- `llm2clip:<hub id or path>`: LLM2CLIP (the paper's encoder, 1280-d): the CLIP vision tower of that repo plus an
  LLM2Vec caption encoder named by `text_model` (needs `pip install llm2vec` and the weights on disk or the Hub).

Every encoder carries an `EncoderSpec` (`encoder.spec`): the structured record that the transfer statistics, the
dataset card and the trained model's config store, and that `load_encoder_from_spec` rebuilds the encoder from. It
holds no path of the machine it ran on: a local folder or weights file is identified by its name and a fingerprint
of its content (so a copied checkpoint, or a second clone holding the same encoder, finds and accepts it), plus the
relative path the recipe gave as a hint. `encoder.id` is a short, path-free string form of the spec, used to refuse
mixing embeddings of two encoders.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from unicorn_hf.encoders.base import PairedEncoder
from unicorn_hf.encoders.hf_clip_encoder import HFClipEncoder
from unicorn_hf.encoders.llm2clip_encoder import LLM2ClipEncoder
from unicorn_hf.encoders.open_clip_encoder import OpenClipEncoder
from unicorn_hf.encoders.spec import (
    HF_PREFIX,
    LLM2CLIP_PREFIX,
    LOCAL_DIR_PREFIX,
    EncoderSpec,
    fingerprint_files,
    fingerprint_hf_folder,
    fingerprint_open_clip_folder,
)


def load_encoder(
    spec: str,
    *,
    device: str | torch.device,
    dtype: str | torch.dtype,
    batch_size: int | None,
    pretrained: str | None = None,
    init_seed: int | None = None,
    **backend_kwargs,
) -> PairedEncoder:
    """Build the encoder named by `spec` (see the module docstring for the accepted forms)."""
    if spec.startswith(HF_PREFIX):
        return HFClipEncoder(spec[len(HF_PREFIX) :], device=device, dtype=dtype, batch_size=batch_size)
    if spec.startswith(LLM2CLIP_PREFIX):
        return LLM2ClipEncoder(
            spec[len(LLM2CLIP_PREFIX) :], device=device, dtype=dtype, batch_size=batch_size, **backend_kwargs
        )
    if backend_kwargs:
        raise TypeError(f"open_clip encoder {spec!r} takes no {sorted(backend_kwargs)}")
    return OpenClipEncoder(spec, pretrained, device=device, dtype=dtype, batch_size=batch_size, init_seed=init_seed)


def load_encoder_from_spec(
    spec: EncoderSpec | dict,
    *,
    device: str | torch.device,
    dtype: str | torch.dtype,
    batch_size: int | None,
    search: Sequence[str | Path] = (),
    **backend_kwargs,
) -> PairedEncoder:
    """Rebuild the encoder a spec describes (what the transfer statistics and a model config store).

    A local encoder is looked for in `search` (e.g. a checkpoint's own folder), then at the relative `location` the
    recipe gave, and accepted only if its fingerprint matches: a copy anywhere is the same encoder, another folder at
    the same path is not. Where none is found the error names the way out.
    """
    spec = EncoderSpec.from_dict(spec) if isinstance(spec, dict) else spec
    kwargs = {"device": device, "dtype": dtype, "batch_size": batch_size, "init_seed": spec.init_seed}
    if spec.library == "llm2clip":
        return load_encoder(f"{LLM2CLIP_PREFIX}{spec.name}", **kwargs, text_model=spec.text_model, **backend_kwargs)
    if not spec.is_local:
        if spec.library == "hf":
            return load_encoder(f"{HF_PREFIX}{spec.name}", **kwargs)
        return load_encoder(spec.name, pretrained=spec.pretrained, **kwargs)
    candidates = [Path(place).expanduser() for place in search]
    if spec.location is not None:
        candidates.append(Path(spec.location))
    for candidate in candidates:
        found = _matching_local(spec, candidate)
        if found is not None:
            return found(**kwargs)
    looked = ", ".join(str(c) for c in candidates) or "nowhere (no relative location recorded)"
    what = f"weights file {spec.pretrained!r}" if spec.pretrained else f"folder {spec.name!r}"
    raise FileNotFoundError(
        f"Encoder {spec.id} is a local {spec.library} {what} (sha256 {spec.fingerprint}); no copy with that content "
        f"was found (looked in: {looked}). Pass its path explicitly (`encoder: {LOCAL_DIR_PREFIX}<folder>` in the "
        "evaluate YAML, or --encoder), or copy it to the relative location above."
    )


def _matching_local(spec: EncoderSpec, candidate: Path):
    """A loader for `candidate` if it holds the spec's encoder (same fingerprint), else None."""
    if spec.library == "hf":
        is_hf_folder = candidate.is_dir() and (candidate / "config.json").is_file()
        if is_hf_folder and fingerprint_hf_folder(candidate.resolve()) == spec.fingerprint:
            return lambda init_seed, **kw: load_encoder(f"{HF_PREFIX}{candidate}", **kw)
        return None
    if spec.pretrained is not None:  # an open_clip architecture + a weights file
        weights = candidate / spec.pretrained if candidate.is_dir() else candidate
        if weights.is_file() and fingerprint_files([weights.resolve()]) == spec.fingerprint:
            return lambda **kw: load_encoder(spec.name, pretrained=str(weights), **kw)
        return None
    is_open_clip_folder = (candidate / "open_clip_config.json").is_file()
    if is_open_clip_folder and fingerprint_open_clip_folder(candidate.resolve()) == spec.fingerprint:
        return lambda **kw: load_encoder(f"{LOCAL_DIR_PREFIX}{candidate}", **kw)
    return None


def load_encoder_for(
    encoder_id: str | None,
    override: str | None = None,
    *,
    encoder: EncoderSpec | dict | None = None,
    search: Sequence[str | Path] = (),
    **load_kwargs,
) -> PairedEncoder:
    """The paired encoder of a checkpoint: `override` (a `load_encoder` spec string) if given, else rebuilt from the
    config's structured `encoder` record (looked for in `search`, e.g. the checkpoint folder, then at its relative
    location). Raises `ValueError` when the config records no `encoder` and none is given, or when the rebuilt
    encoder's id differs from the config's `encoder_id` (embeddings of another encoder)."""
    if override is not None:
        return load_encoder(override, **load_kwargs)
    if encoder is None:
        raise ValueError(
            f"The model config records no `encoder` (encoder_id {encoder_id!r}); pass the encoder spec explicitly "
            "(`encoder:` in the evaluate YAML, or --encoder)."
        )
    loaded = load_encoder_from_spec(encoder, search=search, **load_kwargs)
    if encoder_id is not None and loaded.id != encoder_id:
        raise ValueError(f"Rebuilt encoder {loaded.id!r} differs from the model's {encoder_id!r}.")
    return loaded
