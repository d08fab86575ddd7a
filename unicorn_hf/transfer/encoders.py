"""Paired text/image encoders behind one small interface.

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

import hashlib
import json
import logging
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
import torch.nn.functional as F


logger = logging.getLogger(__name__)

LOCAL_DIR_PREFIX = "local-dir:"
HF_PREFIX = "hf:"
LLM2CLIP_PREFIX = "llm2clip:"
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
# Extra open_clip architectures shipped with this package (e.g. `unicorn-tiny-clip` for the CPU recipe and tests),
# registered with open_clip so they are loaded by name like its built-in ones.
MODEL_CONFIGS = Path(__file__).parent / "model_configs"


# open_clip configs of folders built from a transformers text tower name that tower by a path (the project's own
# encoder writes ".", the folder itself; folders written before named their absolute path): it is not part of what
# the encoder *is*, so it is left out of the fingerprint and re-pointed at the folder on load.
_PATH_FIELDS = ("hf_model_name", "hf_tokenizer_name")
_FINGERPRINT_CHARS = 16  # shown in ids; the spec keeps the full sha256
_CHUNK = 1 << 20


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


def _relative_hint(given: str | Path) -> str | None:
    """The path as the recipe gave it when relative (e.g. `outputs/tiny/encoder`); an absolute path names this
    machine, so it is not kept."""
    path = Path(given)
    return None if path.is_absolute() or str(given).startswith("~") else path.as_posix()


def _hash_file(digest, path: Path) -> None:
    digest.update(path.name.encode())
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)


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
    for path in sorted(p for p in folder.iterdir() if p.suffix in _WEIGHT_SUFFIXES):
        _hash_file(digest, path)
    return digest.hexdigest()


def fingerprint_files(paths: Iterable[Path]) -> str:
    """sha256 over files (name and bytes), in name order: a weights file, or a transformers folder's weights+config."""
    digest = hashlib.sha256()
    for path in sorted(paths, key=lambda p: p.name):
        _hash_file(digest, path)
    return digest.hexdigest()


def fingerprint_hf_folder(folder: Path) -> str:
    return fingerprint_files(p for p in folder.iterdir() if p.suffix in _WEIGHT_SUFFIXES or p.name == "config.json")


def resolve_dtype(dtype: str | torch.dtype) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    resolved = getattr(torch, dtype, None)
    if not isinstance(resolved, torch.dtype) or not resolved.is_floating_point:
        raise ValueError(f"dtype {dtype!r} is not a torch floating point type (float32, float16, bfloat16)")
    return resolved


class PairedEncoder(ABC):
    """A text tower and an image tower that embed into one D-dimensional space.

    Subclasses implement the per-batch forward passes; this class owns batching, `torch.inference_mode`, the
    input checks and the L2 normalisation, so every backend returns the same thing.
    """

    spec: EncoderSpec
    dim: int
    context_length: int | None  # text tokens the text tower sees; longer captions are truncated
    local_path: Path | None = None  # the folder / weights file loaded on this machine (never stored by a stage)

    @property
    def id(self) -> str:
        return self.spec.id

    sort_by_length: bool = False  # True where batches are padded dynamically, so sorting saves compute

    def __init__(self, device: str | torch.device, dtype: str | torch.dtype, batch_size: int | None) -> None:
        self.device = torch.device(device)
        self.dtype = resolve_dtype(dtype)
        self.batch_size = batch_size  # None: everything in one forward pass

    def __repr__(self) -> str:
        return f"{type(self).__name__}(id={self.id!r}, dim={self.dim}, device={self.device}, dtype={self.dtype})"

    @abstractmethod
    def _encode_text_batch(self, texts: list[str]) -> tuple[torch.Tensor, int | None]:
        """Unnormalised text features [B, D] of one batch, and how many of its texts were truncated (None: unknown)."""

    @abstractmethod
    def _encode_image_batch(self, images: list) -> torch.Tensor:
        """Unnormalised image features [B, D] for one batch of PIL images."""

    def text_token_counts(self, texts: Sequence[str]) -> list[int] | None:
        """Tokens per caption before truncation (special tokens included); None where the tokenizer cannot say."""
        return None

    def count_truncated(self, texts: Sequence[str]) -> int | None:
        """How many of `texts` are longer than the text tower's context (and therefore truncated)."""
        counts = self.text_token_counts(texts)
        if counts is None or self.context_length is None:
            return None
        return sum(count > self.context_length for count in counts)

    def encode_text(self, texts: Sequence[str]) -> torch.Tensor:
        """L2-normalised text embeddings [N, D] float32 on the CPU, in the order of `texts`."""
        return self.encode_text_and_count(texts)[0]

    def encode_text_and_count(self, texts: Sequence[str]) -> tuple[torch.Tensor, int | None]:
        """`encode_text` plus the number of texts truncated to the context, counted from the same tokenization."""
        for index, text in enumerate(texts):
            if not isinstance(text, str) or not text.strip():
                raise ValueError(f"text {index} is empty or not a string ({text!r}); drop it before encoding")
        order = sorted(range(len(texts)), key=lambda i: len(texts[i])) if self.sort_by_length else None
        truncated: list[int | None] = []

        def forward(batch: list[str]) -> torch.Tensor:
            features, batch_truncated = self._encode_text_batch(batch)
            truncated.append(batch_truncated)
            return features

        u = self._batched(list(texts), forward, order)
        return u, None if None in truncated else sum(truncated)

    def encode_image(self, images: Sequence) -> torch.Tensor:
        """L2-normalised image embeddings [N, D] float32 on the CPU, in the order of `images`."""
        return self._batched([image.convert("RGB") for image in images], self._encode_image_batch, None)

    def _batched(self, items: list, forward, order: list[int] | None) -> torch.Tensor:
        order = order if order is not None else list(range(len(items)))
        out = torch.empty(len(items), self.dim, dtype=torch.float32)  # [N, D]
        step = self.batch_size or max(1, len(items))
        with torch.inference_mode():
            for start in range(0, len(order), step):
                index = order[start : start + step]
                features = forward([items[i] for i in index])  # [B, D]
                if features.shape != (len(index), self.dim):
                    expected = (len(index), self.dim)
                    raise RuntimeError(f"{self.id} returned {tuple(features.shape)}, expected {expected}")
                out[index] = features.float().cpu()
        # A NaN row stays NaN (callers drop it with a reason); a zero row stays zero instead of dividing by 0.
        return F.normalize(out, dim=-1)


def text_tower_in_folder(folder: Path) -> dict:
    """open_clip keyword overrides (for `create_model_and_transforms`) that load a transformers text tower from
    `folder` itself: open_clip resolves the config's `text_cfg.hf_model_name` against the working directory, and a
    folder may name it "." (relative to the folder) or, written by an older version, by an absolute path of the
    machine that wrote it. {} where the folder has no transformers text tower of its own."""
    folder = Path(folder).resolve()
    config = json.loads((folder / "open_clip_config.json").read_text())
    text_cfg = dict(config.get("model_cfg", {}).get("text_cfg", {}))
    if "hf_model_name" not in text_cfg or not (folder / "config.json").is_file():
        return {}
    # The tower's weights are in the open_clip checkpoint; only its config (and tokenizer) are read from the folder.
    return {"text_cfg": {**text_cfg, "hf_model_name": str(folder), "hf_model_pretrained": False}}


class OpenClipEncoder(PairedEncoder):
    """open_clip model: a built-in name + pretrained tag/file (None = random init), or a `local-dir:` folder."""

    def __init__(
        self,
        model_name: str,
        pretrained: str | None,
        device: str | torch.device,
        dtype: str | torch.dtype,
        batch_size: int | None,
        init_seed: int | None = None,
    ) -> None:
        import open_clip

        super().__init__(device, dtype, batch_size)
        open_clip.add_model_config(MODEL_CONFIGS)
        random_init = pretrained is None and not model_name.startswith("hf-hub:")  # hf-hub: brings its weights
        model_kwargs: dict = {}
        if model_name.startswith(LOCAL_DIR_PREFIX):
            given = model_name[len(LOCAL_DIR_PREFIX) :]
            folder = Path(given).expanduser().resolve()
            if not (folder / "open_clip_config.json").is_file():
                raise FileNotFoundError(f"{folder}/open_clip_config.json is missing: not an open_clip folder")
            if pretrained is not None:
                raise ValueError(f"`pretrained` ({pretrained!r}) is ignored by open_clip for {model_name!r}; drop it")
            model_name = f"{LOCAL_DIR_PREFIX}{folder}"
            random_init = not any(path.suffix in _WEIGHT_SUFFIXES for path in folder.iterdir())
            model_kwargs = text_tower_in_folder(folder)
            self.local_path = folder
            spec = EncoderSpec(
                "open_clip",
                folder.name,
                fingerprint=fingerprint_open_clip_folder(folder),
                location=_relative_hint(given),
            )
        elif pretrained is not None and Path(pretrained).expanduser().is_file():
            weights = Path(pretrained).expanduser().resolve()
            spec = EncoderSpec(
                "open_clip", model_name, pretrained=weights.name, fingerprint=fingerprint_files([weights]),
                location=_relative_hint(pretrained),
            )  # fmt: skip
            pretrained = str(weights)
            self.local_path = weights
        else:
            spec = EncoderSpec("open_clip", model_name, pretrained=pretrained)
        if random_init:
            if init_seed is None:
                raise ValueError(f"{model_name!r} has no weights: pass `init_seed` so the random init is reproducible")
            spec = EncoderSpec(**{**asdict(spec), "init_seed": init_seed})
            logger.warning(
                "Encoder %s has RANDOM weights: the embeddings carry no meaning, only the mechanics are exercised",
                spec.id,
            )
        self.spec = spec
        # open_clip initialises from the global generator: seed a forked one so the caller's RNG state is untouched.
        # Build in float32 and cast as a whole: open_clip's "fp16" keeps some layers in float32 and relies on autocast.
        with torch.random.fork_rng(devices=[]):
            if init_seed is not None:
                torch.manual_seed(init_seed)
            model, _, preprocess = open_clip.create_model_and_transforms(
                model_name, pretrained=pretrained, **model_kwargs
            )
        self.model = model.to(self.device, self.dtype).eval()
        self.preprocess = preprocess  # eval transform: resize, centre-crop, normalise
        self.tokenizer = open_clip.get_tokenizer(model_name)
        self.dim = int(open_clip.get_model_config(model_name)["embed_dim"])
        self.context_length = getattr(self.tokenizer, "context_length", None)
        logger.info("Loaded %s", self)

    def _tokenize(self, texts: list[str]) -> tuple[torch.Tensor, int | None]:
        """Token ids [B, L] (padded to the context length) and the number of truncated texts."""
        from open_clip.tokenizer import SimpleTokenizer

        tokenizer, length = self.tokenizer, self.context_length
        if not isinstance(tokenizer, SimpleTokenizer) or tokenizer.reduction_fn is not None:
            return tokenizer(texts), self.count_truncated(texts)
        # CLIP's BPE is pure Python and the main CPU cost of a small text tower: encode each text once and build
        # the batch as `SimpleTokenizer.__call__` does (keep the first L-1 tokens, end with <end>), counting the cuts.
        ids = [tokenizer.encode(text) for text in texts]
        tokens = torch.zeros(len(texts), length, dtype=torch.long)  # [B, L]
        for row, text_ids in enumerate(ids):
            sequence = [tokenizer.sot_token_id, *text_ids[: length - 2], tokenizer.eot_token_id]
            tokens[row, : len(sequence)] = torch.tensor(sequence)
        return tokens, sum(len(text_ids) + 2 > length for text_ids in ids)

    def _encode_text_batch(self, texts: list[str]) -> tuple[torch.Tensor, int | None]:
        tokens, truncated = self._tokenize(texts)
        return self.model.encode_text(tokens.to(self.device)), truncated

    def _encode_image_batch(self, images: list) -> torch.Tensor:
        pixels = torch.stack([self.preprocess(image) for image in images]).to(self.device, self.dtype)  # [B, 3, H, W]
        return self.model.encode_image(pixels)

    def text_token_counts(self, texts: Sequence[str]) -> list[int] | None:
        from open_clip.tokenizer import HFTokenizer, SimpleTokenizer

        if isinstance(self.tokenizer, SimpleTokenizer) and self.tokenizer.reduction_fn is None:
            return [len(self.tokenizer.encode(text)) + 2 for text in texts]  # + <start>, <end>
        if isinstance(self.tokenizer, HFTokenizer):
            return [len(ids) for ids in self.tokenizer.tokenizer(list(texts))["input_ids"]]
        return None


def _features(output) -> torch.Tensor:
    # transformers returns a tensor or (v5) a model output whose pooled, projected features are `pooler_output`.
    return output if isinstance(output, torch.Tensor) else output.pooler_output


class HFClipEncoder(PairedEncoder):
    """transformers CLIP / SigLIP (`AutoModel` with `get_text_features` / `get_image_features`)."""

    sort_by_length = True  # dynamic padding for CLIP: length-sorted batches waste fewer pad tokens

    def __init__(
        self, name_or_path: str, device: str | torch.device, dtype: str | torch.dtype, batch_size: int | None
    ) -> None:
        from transformers import AutoImageProcessor, AutoModel, AutoTokenizer

        super().__init__(device, dtype, batch_size)
        local = Path(name_or_path).expanduser()
        if local.is_dir():
            folder = local.resolve()
            self.spec = EncoderSpec(
                "hf", folder.name, fingerprint=fingerprint_hf_folder(folder), location=_relative_hint(name_or_path)
            )
            name_or_path = str(folder)
            self.local_path = folder
        else:
            self.spec = EncoderSpec("hf", name_or_path)
        self.model = AutoModel.from_pretrained(name_or_path, dtype=self.dtype).to(self.device).eval()
        self.tokenizer = AutoTokenizer.from_pretrained(name_or_path)
        self.image_processor = AutoImageProcessor.from_pretrained(name_or_path)
        config = self.model.config
        self.dim = int(getattr(config, "projection_dim", None) or config.text_config.hidden_size)
        self.context_length = int(config.text_config.max_position_embeddings)
        # SigLIP was trained on text padded to the full context; its pooled output changes with the padding.
        self.padding = "max_length" if config.model_type.startswith("siglip") else "longest"
        self.sort_by_length = self.padding == "longest"
        logger.info("Loaded %s", self)

    def _encode_text_batch(self, texts: list[str]) -> tuple[torch.Tensor, int | None]:
        inputs = self.tokenizer(
            texts, padding=self.padding, truncation=True, max_length=self.context_length, return_tensors="pt"
        ).to(self.device)
        return _features(self.model.get_text_features(**inputs)), self.count_truncated(texts)  # fast tokenizer

    def _encode_image_batch(self, images: list) -> torch.Tensor:
        pixels = self.image_processor(images=images, return_tensors="pt")["pixel_values"]
        return _features(self.model.get_image_features(pixel_values=pixels.to(self.device, self.dtype)))

    def text_token_counts(self, texts: Sequence[str]) -> list[int]:
        return [len(ids) for ids in self.tokenizer(list(texts))["input_ids"]]


class LLM2ClipEncoder(PairedEncoder):
    """LLM2CLIP (microsoft/LLM2CLIP-*): an LLM2Vec caption encoder feeding the CLIP text adapter, plus the CLIP
    vision tower, following the model card. Long captions are the point (the LLM reads `max_length` tokens).

    Needs `pip install llm2vec`, `trust_remote_code` and the weights (not reachable offline: not covered by tests).
    """

    sort_by_length = True

    def __init__(
        self,
        name_or_path: str,
        text_model: str,
        image_processor: str,
        max_length: int,
        device: str | torch.device,
        dtype: str | torch.dtype,
        batch_size: int | None,
    ) -> None:
        from llm2vec import LLM2Vec
        from transformers import AutoConfig, AutoModel, AutoTokenizer, CLIPImageProcessor

        super().__init__(device, dtype, batch_size)
        # Hub ids (the paper's weights); a local LLM2CLIP folder would need a fingerprint like the other backends.
        self.spec = EncoderSpec("llm2clip", name_or_path, text_model=text_model)
        self.model = AutoModel.from_pretrained(name_or_path, dtype=self.dtype, trust_remote_code=True)
        self.model = self.model.to(self.device).eval()
        self.image_processor = CLIPImageProcessor.from_pretrained(image_processor)
        config = AutoConfig.from_pretrained(text_model, trust_remote_code=True)
        llm = AutoModel.from_pretrained(text_model, dtype=self.dtype, config=config, trust_remote_code=True)
        self.tokenizer = AutoTokenizer.from_pretrained(text_model)
        self.llm2vec = LLM2Vec(
            llm.to(self.device), self.tokenizer, pooling_mode="mean", max_length=max_length, doc_max_length=max_length
        )
        self.dim = int(self.model.config.projection_dim)
        self.context_length = max_length
        logger.info("Loaded %s", self)

    def _encode_text_batch(self, texts: list[str]) -> tuple[torch.Tensor, int | None]:
        hidden = self.llm2vec.encode(texts, convert_to_tensor=True, show_progress_bar=False)  # [B, H_llm]
        return _features(self.model.get_text_features(hidden.to(self.device, self.dtype))), self.count_truncated(texts)

    def _encode_image_batch(self, images: list) -> torch.Tensor:
        pixels = self.image_processor(images=images, return_tensors="pt")["pixel_values"]
        return _features(self.model.get_image_features(pixels.to(self.device, self.dtype)))

    def text_token_counts(self, texts: Sequence[str]) -> list[int]:
        return [len(ids) for ids in self.tokenizer(list(texts))["input_ids"]]


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
