"""A fast OpenAI-compatible backend for the proxy benchmark (bench/proxy.py): raw ASGI from pre-encoded
bytes, about 20k chats per second on one core under uvicorn, so that what is measured is the proxy.

- POST /v1/chat/completions: a fixed chat completion (with usage), or with `"stream": true` a stream of
  STREAM_CHUNKS chunks, a usage chunk and [DONE]. A model named `slow-<seconds>` streams one chunk every
  <seconds> for STREAM_CHUNKS chunks (the memory measurement holds many such streams open at once).
- GET /v1/models: one model; GET /health: 200 (the benchmark waits for it).

The request body is read whole but only looked at for the two fields that change the answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

Event = dict[str, Any]
Receive = Callable[[], Awaitable[Event]]
Send = Callable[[Event], Awaitable[None]]

STREAM_CHUNKS = 20
MODEL = "bench-model"
_JSON = [(b"content-type", b"application/json")]
_EVENTS = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
_MODELS = msgspec.json.encode(
    {"object": "list", "data": [{"id": MODEL, "object": "model", "created": 0, "owned_by": "bench"}]}
)
_IDENTITY = {"id": "chatcmpl-bench", "created": 0, "model": MODEL}
_USAGE = {"prompt_tokens": 12, "completion_tokens": STREAM_CHUNKS, "total_tokens": 12 + STREAM_CHUNKS}
_CHAT = msgspec.json.encode(
    {
        **_IDENTITY,
        "object": "chat.completion",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello from the fast backend."},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": _USAGE,
    }
)


def _chunk(delta: dict[str, Any], finish: str | None = None, usage: dict[str, int] | None = None) -> bytes:
    choices = [{"index": 0, "delta": delta, "finish_reason": finish}] if usage is None else []
    body = {**_IDENTITY, "object": "chat.completion.chunk", "choices": choices, "usage": usage}
    return b"data: " + msgspec.json.encode(body) + b"\n\n"


_FIRST = _chunk({"role": "assistant", "content": ""})
_WORD = _chunk({"content": " word"})
_LAST = _chunk({}, "stop")
_TAIL = _chunk({}, usage=_USAGE) + b"data: [DONE]\n\n"
# the whole stream in one piece when it is not paced
_STREAM = _FIRST + _WORD * STREAM_CHUNKS + _LAST + _TAIL


class _Chat(msgspec.Struct):
    model: str = ""
    stream: bool = False


_decode = msgspec.json.Decoder(_Chat).decode


async def _answer(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    length = (b"content-length", str(len(body)).encode())
    await send({"type": "http.response.start", "status": status, "headers": [*headers, length]})
    await send({"type": "http.response.body", "body": body})


async def _paced(send: Send, seconds: float) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": _EVENTS})
    await send({"type": "http.response.body", "body": _FIRST, "more_body": True})
    for _ in range(STREAM_CHUNKS):
        await asyncio.sleep(seconds)
        await send({"type": "http.response.body", "body": _WORD, "more_body": True})
    await send({"type": "http.response.body", "body": _LAST + _TAIL})


async def app(scope: Event, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return  # lifespan: nothing to set up
    path = scope["path"]
    if scope["method"] == "GET":
        if path == "/v1/models":
            await _answer(send, 200, _JSON, _MODELS)
        else:
            await _answer(send, 200 if path == "/health" else 404, _JSON, b"{}")
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if path != "/v1/chat/completions":
        await _answer(send, 404, _JSON, b'{"error":{"message":"not here","type":"invalid_request_error"}}')
        return
    request = _decode(body)
    if not request.stream:
        await _answer(send, 200, _JSON, _CHAT)
    elif request.model.startswith("slow-"):
        await _paced(send, float(request.model.removeprefix("slow-")))
    else:
        await _answer(send, 200, _EVENTS, _STREAM)
