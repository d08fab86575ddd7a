"""LLM2CLIP, the paper's encoder, as a paired encoder (`llm2clip:<hub id or folder>` + its LLM2Vec text model)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch
from transformers import AutoConfig, AutoModel, AutoTokenizer, CLIPImageProcessor

from unicorn_hf.encoders.base import PairedEncoder, pooled_features
from unicorn_hf.encoders.spec import EncoderSpec


logger = logging.getLogger(__name__)


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
        from llm2vec import LLM2Vec  # optional: `pip install unicorn-hf[llm2clip]`

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
        features = pooled_features(self.model.get_text_features(hidden.to(self.device, self.dtype)))  # [B, D]
        return features, self.count_truncated(texts)

    def _encode_image_batch(self, images: list) -> torch.Tensor:
        pixels = self.image_processor(images=images, return_tensors="pt")["pixel_values"]
        return pooled_features(self.model.get_image_features(pixels.to(self.device, self.dtype)))

    def text_token_counts(self, texts: Sequence[str]) -> list[int]:
        return [len(ids) for ids in self.tokenizer(list(texts))["input_ids"]]
