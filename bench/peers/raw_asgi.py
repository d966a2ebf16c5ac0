"""The ceiling: a raw ASGI app that answers from pre-encoded bytes (and decodes the echo body with msgspec)."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import msgspec

_JSON = [(b"content-type", b"application/json")]
_HEALTH_JSON = [(b"content-type", b"application/health+json"), (b"cache-control", b"no-store")]
_ANSWERS = {
    "/health": (_HEALTH_JSON, b'{"status":"pass"}'),
    "/readyz": (_HEALTH_JSON, b'{"status":"pass","checks":{}}'),
    "/v1/metadata": (_JSON, Path(os.environ["BENCH_METADATA_FILE"]).read_bytes()),
}


class EchoRequest(msgspec.Struct, forbid_unknown_fields=True):
    input: str
    repeat: int = 1


async def _body(receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def app(scope, receive, send) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
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
