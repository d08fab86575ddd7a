"""The optional lmms-eval bridge answers lmms-eval requests through the Unicorn image path (skipped without it)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch


pytest.importorskip("lmms_eval", reason="lmms-eval is an optional extra (pip install lmms-eval)")

from unicorn_hf.evaluation.lmms_eval_bridge import UnicornLmms


class StubQA:
    """Records what the bridge asks for; images are numbers, their 'embedding' is [value, 1]."""

    def __init__(self):
        self.model = SimpleNamespace(config=SimpleNamespace(name_or_path="stub"))
        self.calls = []

    def encode_images(self, images):
        return torch.tensor([[float(image), 1.0] for image in images])  # [N, 2]

    def resolve_mean(self, mode, raw):
        assert mode == "eval"
        return raw.mean(0)

    def shift(self, raw, mean):
        return raw - mean

    def generate_from_embeds(self, embeds, questions, *, batch_size, max_new_tokens, do_sample):
        self.calls.append((embeds.clone(), list(questions), max_new_tokens, do_sample))
        return [f"Yes.\nbecause {q}" for q in questions]


def request(doc_id: int, context: str, gen_kwargs: dict):
    return SimpleNamespace(
        args=(context, gen_kwargs, lambda doc: [doc["image"]], doc_id, "pope", "test"), task_name="pope"
    )


def test_bridge_shifts_by_the_split_mean_batches_by_setting_and_cuts_at_stop_strings():
    qa = StubQA()
    model = UnicornLmms(qa, mean="eval", batch_size=8, max_new_tokens=5)
    model.task_dict = {"pope": {"test": {0: {"image": 1}, 1: {"image": 3}, 2: {"image": 5}}}}
    requests = [
        request(0, "q0", {"until": ["\n"]}),
        request(1, "q1", {"until": "\n", "max_new_tokens": 12}),
        request(2, "q2", {"until": ["\n"], "do_sample": True, "temperature": 0}),  # temperature 0 = greedy
    ]
    answers = model.generate_until(requests)
    assert answers == ["Yes.", "Yes.", "Yes."]  # cut at the stop string
    # Two settings -> two generate calls; the mean is over all three images (1, 3, 5 -> 3).
    assert [(c[1], c[2], c[3]) for c in qa.calls] == [(["q0", "q2"], 5, False), (["q1"], 12, False)]
    torch.testing.assert_close(qa.calls[0][0], torch.tensor([[-2.0, 0.0], [2.0, 0.0]]))
    torch.testing.assert_close(qa.calls[1][0], torch.tensor([[0.0, 0.0]]))


def test_bridge_refuses_loglikelihood_tasks():
    model = UnicornLmms(StubQA(), mean="eval", batch_size=8, max_new_tokens=5)
    with pytest.raises(NotImplementedError):
        model.loglikelihood([])
