"""A platform stream's chunks go through every send wrapper: the platform's ASGI layer, which counts them,
and whatever middleware the service or a plugin adds (no path around them)."""

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

import pytest
from litestar import Response, get
from litestar.plugins import InitPluginProtocol, PluginProtocol
from litestar.testing import TestClient
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from nexus_platform import ServiceSpec, event_stream

from tests.platform.conftest import Logs
from tests.platform.example.main import service

WORDS = [f"w{index}" for index in range(50)]


@get("/v1/test/words", summary="Fifty server-sent events", tags=["test"])
async def words() -> Response[object]:
    async def produce() -> AsyncIterator[dict[str, str]]:
        for word in WORDS:
            yield {"word": word}

    return event_stream(produce())


def _spec(*middleware: Callable[[ASGIApp], ASGIApp], plugins: Sequence[PluginProtocol] = ()) -> ServiceSpec:
    return ServiceSpec(
        route_handlers=[*service.route_handlers, words],
        middleware=list(middleware),
        plugins=list(plugins),
        settings=service.settings,
    )


def _events(body: str) -> list[str]:
    """The data of each event (`data: ...`, or `DATA: ...` once shouted)."""
    return [line.split(": ", 1)[1] for line in body.split("\n\n") if line]


def test_the_access_line_counts_every_byte_of_a_stream(
    make_client: Callable[..., TestClient], logs: Logs
) -> None:
    client = make_client(_spec(), LOG_LEVEL="INFO")
    response = client.get("/v1/test/words", headers={"x-request-id": "direct-1"})
    assert response.status_code == 200
    assert response.headers["x-request-id"] == "direct-1"  # the start went the whole way
    assert [json.loads(event)["word"] for event in _events(response.text)[:-1]] == WORDS
    assert _events(response.text)[-1] == "[DONE]"
    line = logs.access("direct-1")
    assert (line["status"], line["bytes"]) == (200, len(response.content))
    assert "outcome" not in line


def _shouting(seen: list[bytes]) -> Callable[[ASGIApp], ASGIApp]:
    """A middleware that records each body chunk and upper-cases it."""

    def shouting(app: ASGIApp) -> ASGIApp:
        async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
            async def louder(message: Message) -> None:
                if message["type"] == "http.response.body":
                    seen.append(message.get("body", b""))
                    message["body"] = message.get("body", b"").upper()
                await send(message)

            send_louder: Callable[[Message], Awaitable[None]] = louder
            await app(scope, receive, send_louder)

        return middleware

    return shouting


class OpenTelemetryPlugin(InitPluginProtocol):
    """Named as Litestar's, which Litestar finds by name and wraps around the whole app (not a route); the
    platform looks for no plugin by name: its chunks go through the plugin's middleware like any other."""

    def __init__(self, seen: list[bytes]) -> None:
        self.middleware = _shouting(seen)


@pytest.mark.parametrize("where", ["service middleware", "a plugin around the app"])
def test_a_middleware_that_changes_chunks_sees_every_chunk_of_a_platform_stream(
    make_client: Callable[..., TestClient], logs: Logs, where: str
) -> None:
    """A middleware (compression, a tracer counting bytes) must see each chunk: with one on the route or
    around the app, the chunks go through it."""
    seen: list[bytes] = []
    if where == "service middleware":
        spec = _spec(_shouting(seen))
    else:
        spec = _spec(plugins=[OpenTelemetryPlugin(seen)])
    client = make_client(spec, LOG_LEVEL="INFO")
    response = client.get("/v1/test/words", headers={"x-request-id": "shouted-1"})
    assert response.status_code == 200
    events = _events(response.text)
    assert [json.loads(event)["WORD"] for event in events[:-1]] == [word.upper() for word in WORDS]
    assert events[-1] == "[DONE]"
    assert len([chunk for chunk in seen if chunk]) == len(WORDS) + 1  # each event, and [DONE]
    assert logs.access("shouted-1")["bytes"] == len(response.content)
