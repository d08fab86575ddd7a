"""ASGI middleware for vLLM's OpenAI-compatible server: a Unicorn chat request must hold exactly one image.

vLLM runs a prompt without multimodal data straight to the engine (its multimodal processor never sees it), so a
chat with no image would be answered as plain text by a model that was trained only with an image in every dialogue;
two images are refused by vLLM's own per-prompt limit, with a generic message. This middleware answers both with a
400 that names the cause, before vLLM parses the request, and the server goes on serving.

Enabled with vLLM's `--middleware unicorn_hf.serving.middleware.RequireOneImage` (an ASGI class: vLLM adds it with
`app.add_middleware`). Needs neither vLLM nor torch, so its unit tests run everywhere.
"""

from __future__ import annotations

import json
import logging


logger = logging.getLogger(__name__)

IMAGE_PART_TYPES = ("image_url", "image_embeds", "image_pil", "input_image")  # vLLM's chat content part types
CHECKED_PATH_SUFFIX = "/chat/completions"


def image_count_error(body: bytes) -> str | None:
    """The reason a chat-completions request body is refused, or None when it holds exactly one image part (or is not
    a JSON chat request at all: vLLM then answers with its own validation error)."""
    try:
        request = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    messages = request.get("messages") if isinstance(request, dict) else None
    if not isinstance(messages, list):
        return None
    count = 0
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):
            count += sum(1 for part in content if isinstance(part, dict) and part.get("type") in IMAGE_PART_TYPES)
    if count == 1:
        return None
    if count == 0:
        return (
            "This Unicorn model answers about one image, and the request holds none: add one content part of type "
            "'image_url' (e.g. a data:image/png;base64 URL) or 'image_embeds' to a user message."
        )
    return (
        f"This Unicorn model answers about one image per conversation, and the request holds {count} image parts "
        f"({', '.join(IMAGE_PART_TYPES[:2])}): send one."
    )


class RequireOneImage:
    """Pure ASGI middleware (the request body is read once and replayed to vLLM untouched)."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if (
            scope.get("type") != "http"
            or scope.get("method") != "POST"
            or not scope.get("path", "").rstrip("/").endswith(CHECKED_PATH_SUFFIX)
        ):
            await self.app(scope, receive, send)
            return
        received, body = [], b""
        while True:
            message = await receive()
            received.append(message)
            if message.get("type") != "http.request":
                break
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        reason = image_count_error(body)
        if reason is not None:
            logger.info("Refused a chat request: %s", reason)
            await _send_json(send, 400, {"error": {"message": reason, "type": "BadRequestError", "code": 400}})
            return
        replay = iter(received)

        async def replay_receive():
            return next(replay, None) or await receive()

        await self.app(scope, replay_receive, send)


async def _send_json(send, status: int, payload: dict) -> None:
    body = json.dumps(payload).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


__all__ = ["RequireOneImage", "image_count_error"]
