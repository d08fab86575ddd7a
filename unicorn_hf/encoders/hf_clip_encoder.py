"""transformers CLIP / SigLIP as a paired encoder (`hf:<hub id or folder>`)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import torch
from transformers import AutoImageProcessor, AutoModel, AutoTokenizer

from unicorn_hf.encoders.base import PairedEncoder, pooled_features
from unicorn_hf.encoders.spec import EncoderSpec, fingerprint_hf_folder, relative_hint


logger = logging.getLogger(__name__)


class HFClipEncoder(PairedEncoder):
    """transformers CLIP / SigLIP (`AutoModel` with `get_text_features` / `get_image_features`)."""

    sort_by_length = True  # dynamic padding for CLIP: length-sorted batches waste fewer pad tokens

    def __init__(
        self, name_or_path: str, device: str | torch.device, dtype: str | torch.dtype, batch_size: int | None
    ) -> None:
        super().__init__(device, dtype, batch_size)
        local = Path(name_or_path).expanduser()
        if local.is_dir():
            folder = local.resolve()
            self.spec = EncoderSpec(
                "hf", folder.name, fingerprint=fingerprint_hf_folder(folder), location=relative_hint(name_or_path)
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
        return pooled_features(self.model.get_text_features(**inputs)), self.count_truncated(texts)  # fast tokenizer

    def _encode_image_batch(self, images: list) -> torch.Tensor:
        pixels = self.image_processor(images=images, return_tensors="pt")["pixel_values"]
        return pooled_features(self.model.get_image_features(pixel_values=pixels.to(self.device, self.dtype)))

    def text_token_counts(self, texts: Sequence[str]) -> list[int]:
        return [len(ids) for ids in self.tokenizer(list(texts))["input_ids"]]
