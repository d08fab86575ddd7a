"""open_clip encoders: a built-in or packaged architecture with a pretrained tag or weights file, or a `local-dir:`
open_clip folder (the project's own LiT encoder is one)."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import open_clip
import torch
from open_clip.tokenizer import HFTokenizer, SimpleTokenizer

from unicorn_hf.encoders.base import PairedEncoder
from unicorn_hf.encoders.spec import (
    LOCAL_DIR_PREFIX,
    WEIGHT_SUFFIXES,
    EncoderSpec,
    fingerprint_files,
    fingerprint_open_clip_folder,
    relative_hint,
)


logger = logging.getLogger(__name__)

# Extra open_clip architectures shipped with this package (e.g. `unicorn-tiny-clip` for the CPU recipe and tests),
# registered with open_clip so they are loaded by name like its built-in ones.
MODEL_CONFIGS = Path(__file__).parent / "model_configs"


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
            random_init = not any(path.suffix in WEIGHT_SUFFIXES for path in folder.iterdir())
            model_kwargs = text_tower_in_folder(folder)
            self.local_path = folder
            spec = EncoderSpec(
                "open_clip",
                folder.name,
                fingerprint=fingerprint_open_clip_folder(folder),
                location=relative_hint(given),
            )
        elif pretrained is not None and Path(pretrained).expanduser().is_file():
            weights = Path(pretrained).expanduser().resolve()
            spec = EncoderSpec(
                "open_clip", model_name, pretrained=weights.name, fingerprint=fingerprint_files([weights]),
                location=relative_hint(pretrained),
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
        if isinstance(self.tokenizer, SimpleTokenizer) and self.tokenizer.reduction_fn is None:
            return [len(self.tokenizer.encode(text)) + 2 for text in texts]  # + <start>, <end>
        if isinstance(self.tokenizer, HFTokenizer):
            return [len(ids) for ids in self.tokenizer.tokenizer(list(texts))["input_ids"]]
        return None
