"""Real-image inference: images -> paired image encoder -> modality shift -> Unicorn -> text. Batched.

    qa = UnicornImageQA.from_pretrained("outputs/tiny/sft", device="cpu", dtype="float32", encoder_batch_size=16)
    answers = qa.answer(images=[pil, "photo.jpg", "https://..."], questions=["Is there a cat?"] * 3,
                        mean="eval", batch_size=8, max_new_tokens=16)

The encoder is the one recorded in the model config (the structured `encoder` record, rebuilt by
`load_encoder_from_spec`; a local encoder is found by its content fingerprint in the checkpoint folder or at the
recipe's relative location; checkpoints older than that record fall back to parsing `encoder_id`) unless one is
passed. Images go through the image side of the checkpoint's modality transfer rule (`config.modality_transfer`,
`unicorn_hf.modeling.modality_transfer`). For the methods that subtract an image mean there (the paper's mean shift,
C3) the mean is one of `MEAN_MODES`, and results always name it (the other methods ignore it):

    eval   the mean of the evaluated images' own embeddings (what the paper's code does per benchmark)
    image  the `image_mean` stored in the checkpoint (from unlabeled images at transfer time)
    text   the training caption mean `text_mean` (fallback when no image mean is known; leaves the modality gap)
    none   no shift (for models trained with the "ideal" form u - mu_T + mu_V, whose images are used as they come)

`transformers.pipeline("image-text-to-text")` works too, through `make_pipeline`: it binds an image embedder (encoder
+ the rule's image side with a fixed mean) to the processor, so the pipeline's `processor(images=..., text=...)` call
yields `image_embeds`. Prompts are strings holding `<image>` (see `UnicornImageQA.format_prompt`) or chat messages
whose content is structured (`{"type": "image"}` parts become `<image>`: `accept_structured_content`). The "eval"
mean needs every image before the first answer, so with the pipeline compute it first
(`qa.resolve_mean("eval", raw_embeds)`).
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from PIL import Image
from tqdm.auto import tqdm
from transformers import pipeline
from transformers.image_utils import load_image

from unicorn_hf.encoders.image_tower import image_tower_from_encoder
from unicorn_hf.encoders.loading import load_encoder_for
from unicorn_hf.modeling import UnicornForConditionalGeneration, UnicornProcessor
from unicorn_hf.modeling.modality_transfer import IMAGE_MEAN_METHODS


logger = logging.getLogger(__name__)

MEAN_MODES = ("eval", "image", "text", "none")
MEAN_MODE_DESCRIPTIONS = {
    "eval": "mean of the evaluation set's own image embeddings (as in the paper)",
    "image": "image_mean stored in the checkpoint",
    "text": "training caption mean (text_mean) as fallback",
    "none": "no shift",
}


def load_images(items: Sequence) -> list:
    """PIL images, local paths, http(s) URLs or undecoded `datasets` images ({"bytes", "path"}) -> RGB PIL images."""
    images = []
    for index, item in enumerate(items):
        if isinstance(item, dict) and ("bytes" in item or "path" in item):
            item = Image.open(io.BytesIO(item["bytes"])) if item.get("bytes") else item["path"]
        if isinstance(item, (str, Path)) and not str(item).startswith(("http://", "https://")):
            if not Path(item).is_file():
                raise FileNotFoundError(f"image {index}: {item} does not exist")
            item = str(item)
        images.append(load_image(item).convert("RGB"))
    return images


class UnicornImageQA:
    """Batched question answering about real images with a Unicorn checkpoint and its paired image encoder."""

    def __init__(
        self,
        model: UnicornForConditionalGeneration,
        processor: UnicornProcessor,
        encoder,
        prompt_template: str = "<image>\n{question}",
    ):
        """encoder: the paired image encoder (`load_encoder`), or None when the caller passes embeddings only
        (`generate_from_embeds`, `generate_with_first_logits`); then `encode_images` raises `ValueError`."""
        if encoder is None:
            pass
        elif encoder.dim != model.config.embed_dim:
            raise ValueError(f"Encoder {encoder.id!r} gives {encoder.dim}-d embeddings, the model expects "
                             f"{model.config.embed_dim}")  # fmt: skip
        if encoder is not None and model.config.encoder_id not in (None, encoder.id):
            logger.warning(
                "Model was trained on %r embeddings but evaluates with %r", model.config.encoder_id, encoder.id
            )
        if processor.num_image_tokens != model.config.num_image_tokens:
            raise ValueError(f"Processor expands <image> to {processor.num_image_tokens} tokens, the model expects "
                             f"{model.config.num_image_tokens}")  # fmt: skip
        if prompt_template.count(processor.image_token) != 1 or "{question}" not in prompt_template:
            raise ValueError(
                f"prompt_template must hold one {processor.image_token!r} and '{{question}}', got {prompt_template!r}"
            )
        self.model = model.eval()
        self.processor = processor
        self.encoder = encoder
        self.prompt_template = prompt_template
        # Decoder-only batched generation: pad on the left so every prompt ends where generation starts.
        self.processor.tokenizer.padding_side = "left"

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        *,
        device: str,
        dtype: str,
        encoder_batch_size: int | None,
        encoder: str | None = None,
        encoder_kwargs: dict | None = None,
        prompt_template: str = "<image>\n{question}",
    ) -> UnicornImageQA:
        """Load model + processor from a checkpoint folder (or Hub id) and the encoder it records (or `encoder`)."""
        model = UnicornForConditionalGeneration.from_pretrained(str(path), dtype=getattr(torch, dtype)).to(device)
        processor = UnicornProcessor.from_pretrained(str(path))
        if processor.num_image_tokens != model.config.num_image_tokens:  # older processor configs lacked the field
            processor = UnicornProcessor(
                tokenizer=processor.tokenizer,
                chat_template=processor.chat_template,
                image_token=processor.image_token,
                num_image_tokens=model.config.num_image_tokens,
            )
        if encoder_kwargs and encoder is None:
            raise ValueError("encoder_kwargs only apply to an explicit `encoder` spec.")
        extra = dict(encoder_kwargs or {})
        # A checkpoint folder may hold its encoder (or a copy of the recipe's local encoder folder) itself.
        search = [Path(path), Path(path) / "encoder"] if Path(path).is_dir() else []
        loaded = load_encoder_for(
            model.config.encoder_id,
            encoder,
            encoder=model.config.encoder,
            search=search,
            device=device,
            dtype=dtype,
            batch_size=encoder_batch_size,
            **extra,
        )
        return cls(model, processor, loaded, prompt_template=prompt_template)

    # ---- images -> transferred embeddings -------------------------------------------------------------------------
    def encode_images(self, images: Sequence) -> torch.Tensor:
        """Raw (unshifted, L2-normalised) encoder embeddings [N, D] of PIL images / paths / URLs."""
        if self.encoder is None:
            raise ValueError(
                "This UnicornImageQA was built without an encoder (embeddings only): load it with "
                "`UnicornImageQA.from_pretrained` or pass the paired encoder to embed images."
            )
        return self.encoder.encode_image(load_images(images))

    def resolve_mean(
        self, mode: str | torch.Tensor, raw_embeds: torch.Tensor | None = None
    ) -> str | torch.Tensor | None:
        """What `transfer` subtracts for a mean mode; "eval" averages `raw_embeds` (the evaluated images)."""
        if isinstance(mode, torch.Tensor):
            return mode
        if mode == "eval":
            if raw_embeds is None or len(raw_embeds) == 0:
                raise ValueError("mean='eval' needs the raw embeddings of the evaluated images")
            return raw_embeds.float().mean(0)  # [D]
        if mode == "image" and not self.model.config.has_image_mean:
            raise ValueError("mean='image' but this checkpoint stores no image_mean (has_image_mean=False); use "
                             "'eval' or 'text'")  # fmt: skip
        if mode in ("image", "text"):
            return mode
        if mode == "none":
            return None
        raise ValueError(f"Unknown mean mode {mode!r}; expected one of {MEAN_MODES} or a [D] tensor")

    @property
    def subtracts_image_mean(self) -> bool:
        """Whether the checkpoint's transfer method subtracts an image mean at inference (else every mean mode gives
        the same embeddings: the method's image side)."""
        return self.model.config.modality_transfer["method"] in IMAGE_MEAN_METHODS

    def transfer(self, raw_embeds: torch.Tensor, mean: str | torch.Tensor | None) -> torch.Tensor:
        """[N, D] raw -> [N, D] in the training space, through the image side of the checkpoint's transfer rule;
        `mean` (a resolved mean mode) is what `mean_shift` / `c3` subtract, and is not used by the other methods."""
        return self.model.transfer_images(raw_embeds, image_mean=mean if self.subtracts_image_mean else None)

    def image_embedder(self, mean: str | torch.Tensor | None) -> Callable[[Sequence], torch.Tensor]:
        """Callable images -> transferred embeddings, for `UnicornProcessor(images=..., image_embedder=...)`."""
        return lambda images: self.transfer(self.encode_images(images), mean)

    # ---- prompts and generation ---------------------------------------------------------------------------------
    def format_prompt(self, question: str) -> str:
        """One user turn holding `<image>` and the question, through the checkpoint's chat template."""
        content = self.prompt_template.replace("<image>", self.processor.image_token).format(question=question)
        messages = [{"role": "user", "content": content}]
        return self.processor.tokenizer.apply_chat_template(
            messages, chat_template=self.processor.chat_template, tokenize=False, add_generation_prompt=True
        )

    @torch.inference_mode()
    def generate_from_embeds(
        self,
        image_embeds: torch.Tensor,
        questions: Sequence[str],
        *,
        batch_size: int,
        max_new_tokens: int,
        **generate_kwargs,
    ) -> list[str]:
        """Answers for already shifted embeddings [N, D] and N questions, `batch_size` prompts per generate call."""
        answers, _ = self.generate_with_first_logits(
            image_embeds, questions, batch_size=batch_size, max_new_tokens=max_new_tokens, **generate_kwargs
        )
        return answers

    @torch.inference_mode()
    def generate_with_first_logits(
        self,
        image_embeds: torch.Tensor,
        questions: Sequence[str],
        *,
        batch_size: int,
        max_new_tokens: int,
        **generate_kwargs,
    ) -> tuple[list[str], torch.Tensor]:
        """`generate_from_embeds` plus the logits of the first answer token [N, V] (float32, CPU).

        The first-step logits score closed questions without generation noise (compare the logits of "A".."D" or
        "Yes"/"No"), from the same forward pass that starts the generation.
        """
        if len(image_embeds) != len(questions):
            raise ValueError(f"{len(image_embeds)} image embeddings for {len(questions)} questions")
        device = self.model.device
        answers: list[str] = []
        first_logits: list[torch.Tensor] = []
        for start in tqdm(range(0, len(questions), batch_size), desc="generate", unit="batch"):
            prompts = [self.format_prompt(q) for q in questions[start : start + batch_size]]
            inputs = self.processor(
                text=prompts,
                image_embeds=image_embeds[start : start + batch_size],
                padding=True,
                add_special_tokens=False,
            ).to(device)
            inputs["image_embeds"] = inputs["image_embeds"].to(self.model.dtype)
            output = self.model.generate(
                **inputs,
                max_new_tokens=max_new_tokens,
                pad_token_id=self.processor.tokenizer.pad_token_id,
                return_dict_in_generate=True,
                output_logits=True,
                **generate_kwargs,
            )
            new_tokens = output.sequences[:, inputs["input_ids"].shape[1] :]  # [B, new]
            answers.extend(
                t.strip() for t in self.processor.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
            )
            first_logits.append(output.logits[0].float().cpu())  # [B, V]
        return answers, torch.cat(first_logits)

    def answer(
        self,
        images: Sequence,
        questions: Sequence[str],
        *,
        mean: str | torch.Tensor,
        batch_size: int,
        max_new_tokens: int,
        **generate_kwargs,
    ) -> list[str]:
        """Answer `questions[i]` about `images[i]`; `mean` is a mode of `MEAN_MODES` or a [D] tensor."""
        raw = self.encode_images(images)  # [N, D]
        shifted = self.transfer(raw, self.resolve_mean(mean, raw))
        return self.generate_from_embeds(
            shifted, questions, batch_size=batch_size, max_new_tokens=max_new_tokens, **generate_kwargs
        )


class BoundUnicornProcessor(UnicornProcessor):
    """`UnicornProcessor` with an image embedder attached, so `processor(images=..., text=...)` (what transformers'
    image-text-to-text pipeline calls) turns PIL images into `image_embeds` by itself."""

    # ProcessorMixin finds its sub-processors from the `__init__` signature, so `tokenizer` must be named here.
    def __init__(
        self,
        tokenizer=None,
        chat_template=None,
        image_token="<image>",
        num_image_tokens=576,
        image_embedder: Callable[[Sequence], torch.Tensor] | None = None,
        **kwargs,
    ):
        super().__init__(
            tokenizer, chat_template, image_token=image_token, num_image_tokens=num_image_tokens, **kwargs
        )
        self.image_embedder = image_embedder

    def __call__(self, text=None, images=None, image_embeds=None, image_embedder=None, **kwargs):
        if images is not None and not isinstance(images, (list, tuple)):
            images = [images]
        if images is not None and any(isinstance(i, (list, tuple)) for i in images):  # pipeline nests per prompt
            images = [image for group in images for image in (group if isinstance(group, (list, tuple)) else [group])]
        return super().__call__(
            text=text,
            images=images,
            image_embeds=image_embeds,
            image_embedder=image_embedder or self.image_embedder,
            **kwargs,
        )


def make_pipeline(qa: UnicornImageQA, mean: str | torch.Tensor):
    """`transformers.pipeline("image-text-to-text")` over a Unicorn checkpoint, images shifted with a fixed `mean`.

    pipe = make_pipeline(qa, mean="image")
    pipe(images=pil_image, text=qa.format_prompt("What is shown?"), max_new_tokens=16, return_full_text=False)
    """
    resolved = qa.resolve_mean(mean)
    processor = BoundUnicornProcessor(
        tokenizer=qa.processor.tokenizer,
        chat_template=qa.processor.chat_template,
        image_token=qa.processor.image_token,
        num_image_tokens=qa.processor.num_image_tokens,
        image_embedder=qa.image_embedder(resolved),
    )
    return pipeline("image-text-to-text", model=qa.model, processor=processor, device=qa.model.device)


__all__ = [
    "MEAN_MODES",
    "MEAN_MODE_DESCRIPTIONS",
    "BoundUnicornProcessor",
    "UnicornImageQA",
    "image_tower_from_encoder",
    "load_images",
    "make_pipeline",
]
