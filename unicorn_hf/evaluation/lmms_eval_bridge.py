"""Optional bridge to lmms-eval (the community harness): run its task suite on a Unicorn checkpoint.

    from lmms_eval.evaluator import simple_evaluate
    from unicorn_hf.evaluation.inference import UnicornImageQA
    from unicorn_hf.evaluation.lmms_eval_bridge import UnicornLmms

    qa = UnicornImageQA.from_pretrained(
        "outputs/unicorn-8b/sft", device="cuda", dtype="bfloat16", encoder_batch_size=256
    )
    model = UnicornLmms(qa, mean="eval", batch_size=32, max_new_tokens=16)
    results = simple_evaluate(model=model, tasks=["pope", "mme"], batch_size=32)

lmms-eval owns the prompts, the answer parsing and the metrics there; this module only answers its requests with
the same image -> encoder -> shift -> generate path as `recipes/evaluate_vlm.py`. With `mean="eval"` the images of one
`generate_until` call (a whole task split) make the mean, as in the paper. Only generation tasks are supported
(Unicorn takes one image per prompt; log-likelihood tasks raise).

lmms-eval is not a dependency: `pip install lmms-eval` (tested with 0.7.3; it brings ~60 packages and a CUDA torch,
6.6 GB in all, so keep it in its own venv, e.g. `python -m venv --system-site-packages .venv-lmms`).
"""

from __future__ import annotations

import logging

import torch

from unicorn_hf.evaluation.inference import UnicornImageQA


try:
    from lmms_eval.api.model import lmms
except ImportError as error:  # pragma: no cover - depends on the optional install
    raise ImportError("The lmms-eval bridge needs `pip install lmms-eval` (see this module's docstring).") from error


logger = logging.getLogger(__name__)


class UnicornLmms(lmms):
    """An lmms-eval model over `UnicornImageQA`; pass the instance as `simple_evaluate(model=...)`."""

    def __init__(self, qa: UnicornImageQA, *, mean: str | torch.Tensor, batch_size: int, max_new_tokens: int):
        super().__init__()
        self.qa = qa
        self.mean = mean
        self.batch_size_per_gpu = batch_size
        self.max_new_tokens = max_new_tokens
        self.model_name = qa.model.config.name_or_path or "unicorn"

    def _image_of(self, request) -> object:
        _, _, doc_to_visual, doc_id, task, split = request.args
        visuals = doc_to_visual(self.task_dict[task][split][doc_id])
        if not visuals:
            raise ValueError(f"{task}/{split} doc {doc_id} has no image; Unicorn answers about one image")
        if len(visuals) > 1:
            logger.warning("%s/%s doc %s has %d images; Unicorn uses the first", task, split, doc_id, len(visuals))
        return visuals[0]

    def generate_until(self, requests) -> list[str]:
        if not requests:
            return []
        images = [self._image_of(request) for request in requests]
        raw = self.qa.encode_images(images)  # [N, D]
        shifted = self.qa.transfer(raw, self.qa.resolve_mean(self.mean, raw))  # [N, D]
        settings = [self._settings(request) for request in requests]
        answers: list[str] = [""] * len(requests)
        # lmms-eval gives every request its own budget and stop strings; a task uses one set, so batch by setting.
        groups: dict[tuple, list[int]] = {}
        for index, (max_new_tokens, do_sample, _) in enumerate(settings):
            groups.setdefault((max_new_tokens, do_sample), []).append(index)
        for (max_new_tokens, do_sample), indices in groups.items():
            texts = self.qa.generate_from_embeds(
                shifted[indices],
                [requests[i].args[0] for i in indices],
                batch_size=self.batch_size_per_gpu,
                max_new_tokens=max_new_tokens,
                do_sample=do_sample,
            )
            for index, text in zip(indices, texts, strict=True):
                for stop in settings[index][2]:
                    if stop and stop in text:
                        text = text[: text.index(stop)]
                answers[index] = text
                self.cache_hook.add_partial("generate_until", tuple(requests[index].args[:2]), text)
        return answers

    def _settings(self, request) -> tuple[int, bool, list[str]]:
        """(max_new_tokens, do_sample, stop strings) of one request's generation kwargs."""
        gen_kwargs = dict(request.args[1] or {})
        until = gen_kwargs.get("until") or []
        until = [until] if isinstance(until, str) else list(until)
        max_new_tokens = int(gen_kwargs.get("max_new_tokens") or self.max_new_tokens)
        do_sample = bool(gen_kwargs.get("do_sample", False)) and float(gen_kwargs.get("temperature") or 0) > 0
        return max_new_tokens, do_sample, until

    def loglikelihood(self, requests):
        raise NotImplementedError("The Unicorn bridge supports generation tasks only (generate_until).")

    def generate_until_multi_round(self, requests):
        raise NotImplementedError("The Unicorn bridge supports single-round generation tasks only.")


__all__ = ["UnicornLmms"]
