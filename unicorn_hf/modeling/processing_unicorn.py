"""Processor for Unicorn: tokenizer + chat template + `<image>` expansion, and the image processor of the image tower
when the checkpoint carries one (then `processor(images=pil, text=...)` gives `pixel_values`, as LLaVA's does).

Self-contained (imports only torch and transformers) so that it ships as remote code with the checkpoint.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence

import torch
import transformers
from transformers import AutoImageProcessor, BatchFeature, ProcessorMixin
from transformers.image_processing_utils import ImageProcessingMixin


# First line of the prelude `accept_structured_content` puts before a chat template: it is added once, so a template
# that a loaded processor already holds (from disk or the Hub) is not wrapped twice.
STRUCTURED_CONTENT_MARKER = "{#- unicorn: structured content (string or [{type: image|text}] parts) -#}"
# Parts of a structured message are joined by a newline, so [image, text "Q"] renders as "<image>\nQ": the form of the
# training dialogues' first user turn and of the evaluation prompt ("<image>\n{question}").
CONTENT_PART_SEPARATOR = "\n"
IMAGE_PROCESSOR_FILE = "preprocessor_config.json"  # transformers' name, where AutoImageProcessor looks


def accept_structured_content(chat_template: str, image_token: str) -> str:
    """A chat template that takes message content as a plain string or as structured parts, as LLaVA's does.

    `pipeline("image-text-to-text")` and `processor.apply_chat_template` send content as parts
    (`[{"type": "image"}, {"type": "text", "text": "What is shown?"}]`); the LLM's own templates (SmolLM2's ChatML,
    Llama-3's) concatenate `message['content']` as a string and fail on a list. The prelude rewrites every message
    with list content into one string (an image part -> `image_token`, a text part -> its text, parts joined by
    `CONTENT_PART_SEPARATOR`) and hands the template these messages; string content passes through untouched, so the
    training text renders exactly as before. Any other part type raises in the template with its name.
    """
    if chat_template.startswith(STRUCTURED_CONTENT_MARKER):
        return chat_template
    image, separator = json.dumps(image_token), json.dumps(CONTENT_PART_SEPARATOR)
    prelude = (
        STRUCTURED_CONTENT_MARKER
        + "{%- set unicorn = namespace(messages=[]) %}"
        + "{%- for message in messages %}"
        + "{%- if message['content'] is string or message['content'] is none %}"
        + "{%- set unicorn.messages = unicorn.messages + [message] %}"
        + "{%- else %}"
        + "{%- set content = namespace(parts=[], text='') %}"
        + "{%- for part in message['content'] %}"
        + f"{{%- if part['type'] == 'image' %}}{{%- set content.parts = content.parts + [{image}] %}}"
        + "{%- elif part['type'] == 'text' %}{%- set content.parts = content.parts + [part['text']] %}"
        + "{%- else %}{{- raise_exception('Unicorn takes image and text content parts, not ' ~ part['type'] ~ '.') }}"
        + "{%- endif %}"
        + "{%- endfor %}"
        + f"{{%- set content.text = content.parts | join({separator}) %}}"
        + "{%- set unicorn.messages = unicorn.messages + [dict(message, content=content.text)] %}"
        + "{%- endif %}"
        + "{%- endfor %}"
        + "{%- set messages = unicorn.messages %}"
    )
    # transformers renders with trim_blocks: the newline right after the prelude's last tag would be dropped.
    return prelude + ("\n" if chat_template.startswith("\n") else "") + chat_template


class UnicornProcessor(ProcessorMixin):
    r"""
    Turns text (+ an image embedding, PIL images for the carried image tower, or PIL images plus an image encoder)
    into model inputs.

    Every `<image>` in the text becomes `num_image_tokens` copies of the image token, so that `input_ids` line up
    with the projected embedding the model scatters into them.

    Args:
        tokenizer: the LLM's tokenizer, with `image_token` added as a special token.
        chat_template (`str`, *optional*): defaults to the tokenizer's.
        image_token (`str`): placeholder for the image in prompts.
        num_image_tokens (`int`): copies of the placeholder per image; must equal the model config's.
        image_processor (*optional*, keyword only): the image tower's processor (e.g. `CLIPImageProcessor`). It is
            optional, unlike LLaVA's: a checkpoint without a tower takes precomputed `image_embeds`. Saved as
            `preprocessor_config.json` beside the processor and found again by `from_pretrained`.
    """

    attributes = ["tokenizer"]
    tokenizer_class = "AutoTokenizer"

    def __init__(self, tokenizer=None, chat_template=None, image_token="<image>", num_image_tokens=576, **kwargs):
        # Not a declared attribute (ProcessorMixin would then require one in every checkpoint): handled here.
        self.image_processor = kwargs.pop("image_processor", None)
        self.image_token = image_token
        self.num_image_tokens = num_image_tokens
        self.image_token_id = tokenizer.convert_tokens_to_ids(image_token)
        if self.image_token_id is None or self.image_token_id == tokenizer.unk_token_id:
            raise ValueError(f"{image_token!r} is not in the tokenizer's vocabulary; add it as a special token first.")
        if chat_template is None:
            chat_template = getattr(tokenizer, "chat_template", None)
        # Every template this processor holds, its own and its tokenizer's, takes structured content as well.
        chat_template = _accept_structured_content_in(chat_template, image_token)
        tokenizer.chat_template = _accept_structured_content_in(tokenizer.chat_template, image_token)
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
            images: PIL images, one per prompt that holds `<image>` (a nested list per prompt, as the pipeline
                passes, is flattened). With `image_embedder` they become `image_embeds`; else the image processor of
                the carried tower turns them into `pixel_values`.
            image_embeds: precomputed, already shifted embeddings [N, D] (as in the training data).
            image_embedder: callable mapping images to shifted embeddings [N, D], e.g.
                `model.make_image_embedder(encoder.encode_image, mean="image")`.
            tokenizer_kwargs: passed to the tokenizer. Without `add_special_tokens`, a text that already starts with
                the BOS token (a chat template wrote it, as Llama-3's does) is tokenized without adding another, as
                transformers' `ProcessorMixin.apply_chat_template` does and as training and evaluation tokenize
                (`special_tokens_for`).
        """
        if text is None:
            raise ValueError("UnicornProcessor needs `text`.")
        texts = [text] if isinstance(text, str) else list(text)
        if images is not None and image_embeds is not None:
            raise ValueError("Pass either images or image_embeds, not both.")
        pixel_values = None
        if images is not None:
            images = _flatten_images(images)
            if image_embedder is not None:
                image_embeds = image_embedder(images)  # [N, D]
            elif self.image_processor is not None:
                images = [image.convert("RGB") if hasattr(image, "convert") else image for image in images]
                pixel_values = self.image_processor(images=images, return_tensors="pt")["pixel_values"]  # [N, 3, H, W]
            else:
                raise ValueError(
                    "PIL images need an image tower, and this processor has no image processor: the checkpoint "
                    "carries no tower. Pass `image_embeds` [N, D] (the images embedded by the paired encoder the "
                    "model config names, moved by `model.transfer_images`), or an `image_embedder` that does both."
                )
        rows_with_image = [i for i, t in enumerate(texts) if self.image_token in t]
        for i, t in enumerate(texts):
            if (count := t.count(self.image_token)) > 1:
                raise ValueError(f"text[{i}] holds {count} {self.image_token!r}; expected at most 1.")
        given = image_embeds if image_embeds is not None else pixel_values
        if given is not None:
            if image_embeds is not None and image_embeds.dim() == 1:
                image_embeds = given = image_embeds.unsqueeze(0)  # [1, D]
            if given.shape[0] != len(rows_with_image):
                raise ValueError(
                    f"{given.shape[0]} image embedding(s) for {len(rows_with_image)} prompt(s) with "
                    f"{self.image_token!r}."
                )
        elif rows_with_image:
            raise ValueError(f"{len(rows_with_image)} prompt(s) hold {self.image_token!r} but no image was given.")
        if "add_special_tokens" not in tokenizer_kwargs:
            tokenizer_kwargs["add_special_tokens"] = self.special_tokens_for(texts)
        encoding = self.tokenizer(
            [self.expand_image_tokens(t) for t in texts], return_tensors=return_tensors, **tokenizer_kwargs
        )
        data = dict(encoding)
        if image_embeds is not None:
            data["image_embeds"] = image_embeds
        if pixel_values is not None:
            data["pixel_values"] = pixel_values
        return BatchFeature(data=data, tensor_type=return_tensors)

    def special_tokens_for(self, texts: Sequence[str]) -> bool:
        """Whether the tokenizer should add its special tokens to `texts`: not when they start with the BOS token
        already (a chat template wrote it), else a tokenizer that adds a BOS (Llama-3's) would give two. A batch in
        which only some texts start with it raises where the tokenizer adds a BOS: no one setting gives each one."""
        bos = self.tokenizer.bos_token
        written = [bool(bos) and text.startswith(bos) for text in texts]
        if all(written):
            return False
        if any(written) and self._tokenizer_adds_bos():
            with_bos, without = written.index(True), written.index(False)
            raise ValueError(
                f"text[{with_bos}] starts with the BOS token {bos!r} (a chat template wrote it) but text[{without}] "
                "does not, and the tokenizer adds one: render every prompt the same way (all through the chat "
                "template, or none), or pass `add_special_tokens` explicitly."
            )
        return True

    def _tokenizer_adds_bos(self) -> bool:
        """Whether the tokenizer puts its BOS in front of plain text (Llama-3: yes; SmolLM2: no)."""
        ids = self.tokenizer("a")["input_ids"]
        return bool(ids) and self.tokenizer.bos_token_id is not None and ids[0] == self.tokenizer.bos_token_id

    # ---- the optional image processor travels beside the processor files ------------------------------------------
    def save_pretrained(self, save_directory, push_to_hub: bool = False, **kwargs):
        saved = super().save_pretrained(save_directory, push_to_hub=push_to_hub, **kwargs)
        if _is_timm_image_processor(self.image_processor):
            # timm's processor saves nothing (timm keeps it in the model's config.json, here Unicorn's): write its
            # transform settings as `preprocessor_config.json` beside the processor, as any other image processor.
            config = {**self.image_processor.to_dict(), "pretrained_cfg": self.image_processor.data_config}
            path = os.path.join(save_directory, IMAGE_PROCESSOR_FILE)
            with open(path, "w", encoding="utf-8") as handle:
                json.dump(config, handle, indent=2, sort_keys=True)
        elif self.image_processor is not None:
            self.image_processor.save_pretrained(save_directory)
        return saved

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs):
        processor = super().from_pretrained(pretrained_model_name_or_path, **kwargs)
        if processor.image_processor is None:
            hub_kwargs = {
                key: kwargs[key] for key in ("revision", "cache_dir", "token", "local_files_only") if key in kwargs
            }
            processor.image_processor = _load_image_processor(pretrained_model_name_or_path, hub_kwargs)
        return processor

    @property
    def model_input_names(self) -> list[str]:
        return [*self.tokenizer.model_input_names, "image_embeds", "pixel_values"]


def _accept_structured_content_in(chat_template: str | dict | None, image_token: str) -> str | dict | None:
    """`accept_structured_content` for one template, each of a dict of named templates, or none."""
    if isinstance(chat_template, dict):
        return {name: accept_structured_content(template, image_token) for name, template in chat_template.items()}
    return None if chat_template is None else accept_structured_content(chat_template, image_token)


def _is_timm_image_processor(image_processor) -> bool:
    return type(image_processor).__name__ == "TimmWrapperImageProcessor"


def _load_image_processor(pretrained_model_name_or_path, hub_kwargs: dict):
    """The image processor saved beside the processor (`preprocessor_config.json`), or None where there is none (a
    checkpoint without an image tower)."""
    try:
        config, _ = ImageProcessingMixin.get_image_processor_dict(pretrained_model_name_or_path, **hub_kwargs)
    except OSError:
        return None
    if config.get("image_processor_type") == "TimmWrapperImageProcessor":
        # AutoImageProcessor would send timm's processor to `config.json` (the Unicorn config) for its settings.
        return transformers.TimmWrapperImageProcessor.from_dict(config)
    return AutoImageProcessor.from_pretrained(pretrained_model_name_or_path, **hub_kwargs)


def _flatten_images(images) -> list:
    """One image, a list, or a list per prompt (what `pipeline("image-text-to-text")` passes) -> a flat list."""
    if not isinstance(images, (list, tuple)):
        return [images]
    return [image for group in images for image in (group if isinstance(group, (list, tuple)) else [group])]


__all__ = ["CONTENT_PART_SEPARATOR", "STRUCTURED_CONTENT_MARKER", "UnicornProcessor", "accept_structured_content"]
