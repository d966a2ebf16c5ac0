"""The ceiling: a raw ASGI app that answers from pre-encoded bytes (and decodes the echo body with msgspec)."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import msgspec

# the ASGI callables' types (the ASGI specification's, without a dependency for them)
Event = dict[str, Any]
Receive = Callable[[], Awaitable[Event]]
Send = Callable[[Event], Awaitable[None]]

_JSON = [(b"content-type", b"application/json")]
_EVENTS = [(b"content-type", b"text/event-stream")]
_HEALTH_JSON = [(b"content-type", b"application/health+json"), (b"cache-control", b"no-store")]
_ANSWERS = {
    "/health": (_HEALTH_JSON, b'{"status":"pass"}'),
    "/readyz": (_HEALTH_JSON, b'{"status":"pass","checks":{}}'),
    "/v1/metadata": (_JSON, Path(os.environ["BENCH_METADATA_FILE"]).read_bytes()),
}


class EchoRequest(msgspec.Struct, forbid_unknown_fields=True):
    input: str
    repeat: int = 1


class Message(msgspec.Struct):
    role: str
    content: str | None = None


class ChatRequest(msgspec.Struct):
    model: str
    messages: list[Message]
    stream: bool = False


def _chunk(identity: dict, delta: dict, finish: str | None = None) -> bytes:
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    return b"data: " + msgspec.json.encode({**identity, "choices": [choice]}) + b"\n\n"


async def _chat(receive: Receive, send: Send) -> None:
    data = msgspec.json.decode(await _body(receive), type=ChatRequest)
    last_user = next((m.content or "" for m in reversed(data.messages) if m.role == "user"), "")
    words = f"You said: {last_user}".split()
    identity = {"id": f"chatcmpl-{uuid.uuid4().hex}", "created": int(time.time()), "model": data.model}
    if not data.stream:
        message = {"role": "assistant", "content": " ".join(words)}
        answer = {**identity, "object": "chat.completion", "choices": [{"index": 0, "message": message}]}
        await send({"type": "http.response.start", "status": 200, "headers": _JSON})
        await send({"type": "http.response.body", "body": msgspec.json.encode(answer)})
        return
    identity["object"] = "chat.completion.chunk"
    await send({"type": "http.response.start", "status": 200, "headers": _EVENTS})
    await send(
        {"type": "http.response.body", "body": _chunk(identity, {"role": "assistant"}), "more_body": True}
    )
    for index, word in enumerate(words):
        body = _chunk(identity, {"content": word if index == 0 else " " + word})
        await send({"type": "http.response.body", "body": body, "more_body": True})
    await send({"type": "http.response.body", "body": _chunk(identity, {}, "stop"), "more_body": True})
    await send({"type": "http.response.body", "body": b"data: [DONE]\n\n"})


async def _body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    if scope["path"] == "/v1/chat/completions":
        await _chat(receive, send)
        return
    if scope["path"] == "/v1/echo":
        data = msgspec.json.decode(await _body(receive), type=EchoRequest)
        output = " ".join([data.input] * data.repeat)
        body = msgspec.json.encode(
            {
                "id": f"echo-{uuid.uuid4().hex}",
                "object": "echo",
                "created": int(time.time()),
                "output": output,
            }
        )
        headers = _JSON
    else:
        headers, body = _ANSWERS[scope["path"]]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})
