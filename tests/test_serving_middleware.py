"""The one-image rule of the vLLM server (`unicorn_hf.serving.middleware`): no vLLM needed, runs in the default suite.
The server itself is exercised for real in tests/test_serving_vllm.py (`make serve-check`)."""

from __future__ import annotations

import asyncio
import json

from unicorn_hf.serving.middleware import RequireOneImage, image_count_error


IMAGE = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
EMBEDS = {"type": "image_embeds", "image_embeds": "AAAA"}
TEXT = {"type": "text", "text": "What is shown?"}


def chat_body(*contents) -> bytes:
    return json.dumps({"model": "unicorn", "messages": [{"role": "user", "content": c} for c in contents]}).encode()


def test_one_image_passes_none_and_two_are_named():
    assert image_count_error(chat_body([IMAGE, TEXT])) is None
    assert image_count_error(chat_body([EMBEDS, TEXT])) is None
    assert "holds none" in image_count_error(chat_body([TEXT]))
    assert "holds none" in image_count_error(chat_body("a plain string turn"))
    assert "2 image parts" in image_count_error(chat_body([IMAGE, TEXT], [EMBEDS]))
    assert image_count_error(b"not json") is None  # vLLM answers malformed bodies itself


def run_middleware(body: bytes, path: str = "/v1/chat/completions", chunks: int = 2):
    """Drive the ASGI middleware with `body` split into `chunks` messages; returns (status sent, body seen by app)."""
    seen, sent = {}, []

    async def app(scope, receive, send):  # stands for vLLM's app: reads the whole body, answers 200
        data = b""
        while True:
            message = await receive()
            data += message.get("body", b"")
            if not message.get("more_body"):
                break
        seen["body"] = data
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    size = max(1, len(body) // chunks + 1)
    parts = [body[i : i + size] for i in range(0, len(body), size)] or [b""]
    messages = [{"type": "http.request", "body": p, "more_body": i < len(parts) - 1} for i, p in enumerate(parts)]

    async def receive():
        return messages.pop(0)

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": path}
    asyncio.run(RequireOneImage(app)(scope, receive, send))
    return sent[0]["status"], seen.get("body"), sent


def test_middleware_replays_a_good_body_and_refuses_a_bad_one():
    good = chat_body([IMAGE, TEXT])
    status, seen, _ = run_middleware(good)
    assert status == 200 and seen == good  # the app reads exactly what the client sent

    status, seen, sent = run_middleware(chat_body([TEXT]))
    assert status == 400 and seen is None
    assert "holds none" in json.loads(sent[1]["body"])["error"]["message"]

    status, seen, _ = run_middleware(chat_body([TEXT]), path="/v1/completions")
    assert status == 200  # only chat requests are checked
