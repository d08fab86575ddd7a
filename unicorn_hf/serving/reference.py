"""What vLLM serving is compared with: real (image, question) pairs and transformers' greedy answers to them.

Shared by `tests/test_serving_vllm.py` (token equality) and `bench/bench_serving.py` (throughput). Imports only
transformers and the packaged photographs, so it runs in the repo venv and in the vLLM venv alike.
"""

from __future__ import annotations

import base64
import io
import logging
from dataclasses import dataclass

import torch
from transformers import AutoModelForImageTextToText, AutoProcessor, pipeline

from unicorn_hf.utils.assets import SKIMAGE_PHOTOGRAPHS, load_photograph


logger = logging.getLogger(__name__)

QUESTIONS = ("What is shown in this image?", "Describe this picture in one sentence.")


@dataclass
class Pair:
    """One image and one question about it: the unit the comparisons count."""

    image_name: str
    image: object  # PIL.Image.Image, RGB
    question: str

    def messages(self, image_part: dict | None = None) -> list[dict]:
        """Chat messages with one structured user turn: `image_part` (default: the PIL image, as `pipeline()` takes
        it) then the question. The chat template renders it as "<image>\\n{question}"."""
        part = image_part if image_part is not None else {"type": "image", "image": self.image}
        return [{"role": "user", "content": [part, {"type": "text", "text": self.question}]}]


def question_image_pairs(count: int) -> list[Pair]:
    """`count` pairs over the packaged scikit-image photographs, each photograph asked every question in turn."""
    images: dict[str, object] = {}
    pairs = []
    for index in range(count):
        photo = SKIMAGE_PHOTOGRAPHS[(index // len(QUESTIONS)) % len(SKIMAGE_PHOTOGRAPHS)]
        if photo.name not in images:
            images[photo.name] = load_photograph(photo.name)
        pairs.append(Pair(photo.name, images[photo.name], QUESTIONS[index % len(QUESTIONS)]))
    return pairs


def data_url(image) -> str:
    """A PIL image as the `data:image/png;base64,...` URL of an OpenAI `image_url` part (PNG: lossless)."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def tensor_base64(tensor) -> str:
    """A tensor as vLLM's `image_embeds` content part takes it: `torch.save` bytes, base64."""
    buffer = io.BytesIO()
    torch.save(tensor.contiguous(), buffer)
    return base64.b64encode(buffer.getvalue()).decode()


def transformers_reference(folder: str, pairs: list[Pair], max_new_tokens: int) -> list[dict]:
    """Greedy answers of the checkpoint in transformers, fp32 on the CPU, one pair at a time.

    Each pair is answered twice: by `pipeline("image-text-to-text")` (the text a user sees) and by `model.generate`
    on the processor's inputs (the token ids the pipeline decodes); the two must agree, so the token ids stand for
    the pipeline in the comparison with vLLM.

    Returns:
        One dict per pair: `prompt` (chat-template text, holding one "<image>"), `token_ids` (generated ids),
        `text` (the pipeline's generated text), `image_embeds` ([1, embed_dim], the training-space embedding of the
        image by the checkpoint's own tower and rule: what a client would send as `image_embeds`).
    """
    import unicorn_hf  # noqa: F401  (registers the Auto classes)

    processor = AutoProcessor.from_pretrained(folder)
    model = AutoModelForImageTextToText.from_pretrained(folder, dtype=torch.float32).eval()
    pipe = pipeline("image-text-to-text", model=model, processor=processor, device="cpu")
    greedy = {"do_sample": False, "max_new_tokens": max_new_tokens}
    results = []
    for pair in pairs:
        messages = pair.messages()
        prompt = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        inputs = processor(text=[prompt], images=[pair.image], return_tensors="pt")
        with torch.inference_mode():
            generated = model.generate(**inputs, **greedy)[0, inputs["input_ids"].shape[1] :]
            image_embeds = model.model.embed_pixels(inputs["pixel_values"])  # [1, D]
        text = pipe(text=messages, return_full_text=False, generate_kwargs=greedy)[0]["generated_text"]
        decoded = processor.tokenizer.decode(generated, skip_special_tokens=True)
        if decoded != text:
            raise AssertionError(f"pipeline and generate disagree on {pair.image_name!r}: {text!r} vs {decoded!r}")
        results.append(
            {"prompt": prompt, "token_ids": generated.tolist(), "text": text, "image_embeds": image_embeds.float()}
        )
    logger.info("transformers reference: %d pairs, %d new tokens at most", len(pairs), max_new_tokens)
    return results


__all__ = ["QUESTIONS", "Pair", "data_url", "question_image_pairs", "tensor_base64", "transformers_reference"]
