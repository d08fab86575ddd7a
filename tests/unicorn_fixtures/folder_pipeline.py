"""Ask a checkpoint folder about a real image twice: through transformers' `pipeline("image-text-to-text")` alone
(the tower and image processor it carries, structured chat messages) and through the project's own path
(`UnicornImageQA`: the paired encoder in Python, the stored image mean, `image_embeds`). Each gives the answer and
the logits of the first answer token [V], so the two can be compared exactly."""

from __future__ import annotations

import torch
from transformers import pipeline


def pipeline_answer(folder, image, question: str, max_new_tokens: int, **pipeline_kwargs) -> tuple[str, torch.Tensor]:
    pipe = pipeline("image-text-to-text", model=str(folder), **pipeline_kwargs)
    messages = [{"role": "user", "content": [{"type": "image", "image": image}, {"type": "text", "text": question}]}]
    generate = {"max_new_tokens": max_new_tokens, "do_sample": False}
    answer = pipe(text=messages, generate_kwargs=generate, return_full_text=False)[0]["generated_text"]
    inputs = pipe.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=True)
    with torch.no_grad():
        logits = pipe.model(**inputs).logits[0, -1].float()  # [V]
    return answer.strip(), logits


def project_answer(qa, image, question: str, max_new_tokens: int) -> tuple[str, torch.Tensor]:
    """`qa` is a `UnicornImageQA`; the shift is the stored image mean (`mean="image"`)."""
    shifted = qa.shift(qa.encode_images([image]), qa.resolve_mean("image"))  # [1, D]
    answers, logits = qa.generate_with_first_logits(
        shifted, [question], batch_size=1, max_new_tokens=max_new_tokens, do_sample=False
    )
    return answers[0], logits[0]
