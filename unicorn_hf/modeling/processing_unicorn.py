"""Processor for Unicorn: tokenizer + chat template + `<image>` expansion + optional image-encoder hook.

Self-contained (imports only torch and transformers) so that it ships as remote code with the checkpoint.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from transformers import BatchFeature, ProcessorMixin


class UnicornProcessor(ProcessorMixin):
    r"""
    Turns text (+ an image embedding, or a PIL image plus an image encoder) into model inputs.

    Every `<image>` in the text becomes `num_image_tokens` copies of the image token, so that `input_ids` line up
    with the projected embedding the model scatters into them.

    Args:
        tokenizer: the LLM's tokenizer, with `image_token` added as a special token.
        chat_template (`str`, *optional*): defaults to the tokenizer's.
        image_token (`str`): placeholder for the image in prompts.
        num_image_tokens (`int`): copies of the placeholder per image; must equal the model config's.
    """

    attributes = ["tokenizer"]
    tokenizer_class = "AutoTokenizer"

    def __init__(self, tokenizer=None, chat_template=None, image_token="<image>", num_image_tokens=576, **kwargs):
        self.image_token = image_token
        self.num_image_tokens = num_image_tokens
        self.image_token_id = tokenizer.convert_tokens_to_ids(image_token)
        if self.image_token_id is None or self.image_token_id == tokenizer.unk_token_id:
            raise ValueError(f"{image_token!r} is not in the tokenizer's vocabulary; add it as a special token first.")
        if chat_template is None:
            chat_template = getattr(tokenizer, "chat_template", None)
        super().__init__(tokenizer, chat_template=chat_template)

    def expand_image_tokens(self, text: str) -> str:
        return text.replace(self.image_token, self.image_token * self.num_image_tokens)

    def __call__(
        self,
        text: str | Sequence[str] | None = None,
        images: Sequence | None = None,
        image_embeds: torch.Tensor | None = None,
        image_embedder: Callable[[Sequence], torch.Tensor] | None = None,
        return_tensors: str | None = "pt",
        **tokenizer_kwargs,
    ) -> BatchFeature:
        """
        Args:
            text: one prompt or a batch; each prompt holds at most one `<image>`.
            images: PIL images, one per prompt that holds `<image>`; needs `image_embedder`.
            image_embeds: precomputed, already shifted embeddings [N, D] (as in the training data).
            image_embedder: callable mapping images to shifted embeddings [N, D], e.g.
                `model.make_image_embedder(encoder.encode_image, mean="image")`.
        """
        if text is None:
            raise ValueError("UnicornProcessor needs `text`.")
        texts = [text] if isinstance(text, str) else list(text)
        if images is not None and image_embeds is not None:
            raise ValueError("Pass either images (with image_embedder) or image_embeds, not both.")
        if images is not None:
            if image_embedder is None:
                raise ValueError("PIL images need an image_embedder (image encoder + modality shift).")
            images = list(images) if isinstance(images, (list, tuple)) else [images]
            image_embeds = image_embedder(images)  # [N, D]
        rows_with_image = [i for i, t in enumerate(texts) if self.image_token in t]
        for i, t in enumerate(texts):
            if (count := t.count(self.image_token)) > 1:
                raise ValueError(f"text[{i}] holds {count} {self.image_token!r}; expected at most 1.")
        if image_embeds is not None:
            if image_embeds.dim() == 1:
                image_embeds = image_embeds.unsqueeze(0)  # [1, D]
            if image_embeds.shape[0] != len(rows_with_image):
                raise ValueError(
                    f"{image_embeds.shape[0]} image embedding(s) for {len(rows_with_image)} prompt(s) with "
                    f"{self.image_token!r}."
                )
        elif rows_with_image:
            raise ValueError(f"{len(rows_with_image)} prompt(s) hold {self.image_token!r} but no image was given.")
        encoding = self.tokenizer(
            [self.expand_image_tokens(t) for t in texts], return_tensors=return_tensors, **tokenizer_kwargs
        )
        data = dict(encoding)
        if image_embeds is not None:
            data["image_embeds"] = image_embeds
        return BatchFeature(data=data, tensor_type=return_tensors)

    @property
    def model_input_names(self) -> list[str]:
        return [*self.tokenizer.model_input_names, "image_embeds"]


__all__ = ["UnicornProcessor"]
