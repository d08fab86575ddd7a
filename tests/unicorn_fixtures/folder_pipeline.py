"""Ask a checkpoint folder about a real image twice: through transformers' `pipeline("image-text-to-text")` alone
(the tower and image processor it carries, structured chat messages) and through the project's own path
(`UnicornImageQA`: the paired encoder in Python, the stored image mean, `image_embeds`). Each gives the answer and
the logits of the first answer token [V], so the two can be compared exactly."""

from __future__ import annotations

import textwrap

import torch
from transformers import pipeline


# The first lines of a `python -c` script that must run as a user with only transformers and torch: importing
# unicorn_hf fails there, so the checkpoint folder's remote code is all it has.
BLOCK_UNICORN_HF = textwrap.dedent(
    """
    import importlib.abc, sys

    class BlockUnicornHF(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] == "unicorn_hf":
                raise ImportError("unicorn_hf is deliberately not importable here")

    sys.meta_path.insert(0, BlockUnicornHF())
    """
)


def save_with_image_tower(folder, lm_path: str, encoder, images, embed_dim: int, num_image_tokens: int):
    """A random-init tiny Unicorn over `lm_path` for `encoder`'s embeddings, its stored image mean taken over
    `images`, saved into `folder` with the encoder's image tower and image processor. Returns (model, processor)."""
    from unicorn_hf.training.builder import build_from_text_model, set_modality_transfer
    from unicorn_hf.training.image_tower import attach_encoder_image_tower

    torch.manual_seed(0)
    model, processor = build_from_text_model(
        lm_path, embed_dim=embed_dim, projector_type="mlp2x_gelu", num_image_tokens=num_image_tokens,
        encoder_id=encoder.id, encoder=encoder.spec.to_dict(),
    )  # fmt: skip
    set_modality_transfer(model, torch.randn(embed_dim) * 0.1, encoder.encode_image(images).mean(0))
    attach_encoder_image_tower(model, processor, encoder, mean="image")
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return model.eval(), processor


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
    shifted = qa.transfer(qa.encode_images([image]), qa.resolve_mean("image"))  # [1, D]
    answers, logits = qa.generate_with_first_logits(
        shifted, [question], batch_size=1, max_new_tokens=max_new_tokens, do_sample=False
    )
    return answers[0], logits[0]
