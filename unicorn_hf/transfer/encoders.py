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

`id` is stable and recorded in the transfer statistics and in the trained model's config, so that embeddings of two
encoders are never mixed.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Sequence
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

    id: str
    dim: int
    context_length: int | None  # text tokens the text tower sees; longer captions are truncated
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
        if model_name.startswith(LOCAL_DIR_PREFIX):
            folder = Path(model_name[len(LOCAL_DIR_PREFIX) :]).expanduser().resolve()
            if not (folder / "open_clip_config.json").is_file():
                raise FileNotFoundError(f"{folder}/open_clip_config.json is missing: not an open_clip folder")
            if pretrained is not None:
                raise ValueError(f"`pretrained` ({pretrained!r}) is ignored by open_clip for {model_name!r}; drop it")
            model_name = f"{LOCAL_DIR_PREFIX}{folder}"
            random_init = not any(path.suffix in _WEIGHT_SUFFIXES for path in folder.iterdir())
            self.id = f"open_clip:{model_name}"
        elif pretrained is not None and Path(pretrained).expanduser().is_file():
            pretrained = str(Path(pretrained).expanduser().resolve())
            self.id = f"open_clip:{model_name}/file:{pretrained}"
        else:
            self.id = f"open_clip:{model_name}" + (f"/{pretrained}" if pretrained else "")
        if random_init:
            if init_seed is None:
                raise ValueError(f"{model_name!r} has no weights: pass `init_seed` so the random init is reproducible")
            self.id += f"#random-init-seed{init_seed}"
            logger.warning(
                "Encoder %s has RANDOM weights: the embeddings carry no meaning, only the mechanics are exercised",
                self.id,
            )
        # open_clip initialises from the global generator: seed a forked one so the caller's RNG state is untouched.
        # Build in float32 and cast as a whole: open_clip's "fp16" keeps some layers in float32 and relies on autocast.
        with torch.random.fork_rng(devices=[]):
            if init_seed is not None:
                torch.manual_seed(init_seed)
            model, _, preprocess = open_clip.create_model_and_transforms(model_name, pretrained=pretrained)
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
        name_or_path = str(local.resolve()) if local.is_dir() else name_or_path
        self.id = f"hf:{name_or_path}"
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
        self.id = f"llm2clip:{name_or_path}+{text_model}"
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
