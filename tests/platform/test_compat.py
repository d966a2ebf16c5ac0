"""The Litestar and uvicorn internals that nexus_platform/_compat.py relies on are still there, and
still behave.

A failure here after a dependency changed names what moved: re-check nexus_platform/_compat.py
against the installed release, then update the version it says it was checked against.
"""

import asyncio
import inspect
import re
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from litestar import Request, Response
from litestar.response import Stream
from litestar.testing import RequestFactory
from litestar.types import HTTPRequestEvent, Receive
from litestar.types import Message as SendMessage
from nexus_platform import _compat
from nexus_platform._server.drain import DrainingServer
from nexus_platform._server.protocol import GuardedHttpToolsProtocol
from uvicorn.server import ServerState

ROOT = Path(__file__).resolve().parents[2]
Message = dict[str, Any]


def _pinned(name: str) -> str | None:
    """The version the maintainers' environment pins (pyproject.toml's dev extra, = the services' pins)."""
    match = re.search(rf'"{name}==([^"\s;]+)"', (ROOT / "pyproject.toml").read_text())
    return match.group(1) if match else None


@pytest.mark.parametrize(
    ("name", "checked"), [("litestar", _compat.LITESTAR_CHECKED), ("uvicorn", _compat.UVICORN_CHECKED)]
)
def test_the_checked_release_is_the_pinned_and_installed_one(name: str, checked: str) -> None:
    assert _pinned(name) == checked == version(name), (
        f"{name} {version(name)} is installed, nexus_platform/_compat.py was checked against {checked}: "
        "re-check it against the new release, then update the version it names"
    )


def _receiving(body: bytes) -> Receive:
    async def receive() -> HTTPRequestEvent:
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


def _request(body: bytes) -> Request[Any, Any, Any]:
    scope = RequestFactory().post("/", headers={"content-type": "application/json"}).scope
    return Request({**scope, "state": {}}, _receiving(body))  # a fresh state: the body is read from receive


def test_the_json_body_litestar_decoded_is_read_back_from_the_request() -> None:
    request = _request(b'{"items": [1, 2]}')
    assert _compat.decoded_json_body(request) is None  # not decoded yet
    assert asyncio.run(request.json()) == {"items": [1, 2]}
    assert _compat.decoded_json_body(request) == {"items": [1, 2]}


@pytest.mark.parametrize(
    ("body", "error"), [(b'"\xff"', UnicodeDecodeError), (b"[" * 100_000, RecursionError)]
)
def test_an_error_in_litestars_body_decoding_is_recognised(body: bytes, error: type[Exception]) -> None:
    with pytest.raises(error) as raised:
        asyncio.run(_request(body).json())
    assert _compat.raised_while_decoding_json(raised.value)


def test_an_error_of_the_service_is_not_taken_for_a_decoding_error() -> None:
    with pytest.raises(UnicodeDecodeError) as raised:
        b"\xff".decode()
    assert not _compat.raised_while_decoding_json(raised.value)


def test_a_litestar_stream_is_sent_from_the_request_task() -> None:
    async def scenario() -> None:
        producing: set[asyncio.Task[Any] | None] = set()

        async def chunks() -> AsyncIterator[bytes]:
            producing.add(asyncio.current_task())
            yield b"one"
            yield b"two"

        request = RequestFactory().get("/")
        response = _compat.streamed_in_request_task(Stream(chunks()).to_asgi_response(None, request))
        sent: list[Message] = []

        async def send(message: SendMessage) -> None:
            sent.append(dict(message))

        await response(request.scope, _receiving(b""), send)
        assert producing == {asyncio.current_task()}
        assert [message["type"] for message in sent] == ["http.response.start", *["http.response.body"] * 3]
        assert [message["body"] for message in sent[1:]] == [b"one", b"two", b""]

    asyncio.run(scenario())


def test_only_a_streaming_response_is_changed() -> None:
    request = RequestFactory().get("/")
    with pytest.raises(TypeError, match="ASGIStreamingResponse"):
        _compat.streamed_in_request_task(Response(b"{}").to_asgi_response(None, request))


_lifespan_events: list[str] = []


async def _app(
    scope: Message, receive: Callable[[], Awaitable[Message]], send: Callable[[Message], Awaitable[None]]
) -> None:
    """An ASGI app that only answers its lifespan (uvicorn's own message types are private)."""
    if scope["type"] != "lifespan":
        return
    while True:
        event = (await receive())["type"]
        _lifespan_events.append(event)
        if event == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
        await send({"type": "lifespan.startup.complete"})


def test_uvicorn_keeps_fractional_timeouts() -> None:
    config = uvicorn.Config(
        _app,
        timeout_keep_alive=_compat.uvicorn_seconds(0.25),
        timeout_graceful_shutdown=_compat.uvicorn_seconds(1.5),
    )
    assert (config.timeout_keep_alive, config.timeout_graceful_shutdown) == (0.25, 1.5)


@pytest.mark.parametrize(
    ("owner", "hooks"),
    [(_compat.UvicornServer, _compat.SERVER_HOOKS), (_compat.UvicornHttpProtocol, _compat.PROTOCOL_HOOKS)],
)
def test_the_overridden_methods_are_uvicorns_with_the_same_parameters(
    owner: type, hooks: tuple[str, ...]
) -> None:
    ours = DrainingServer if owner is _compat.UvicornServer else GuardedHttpToolsProtocol
    overridden = {name for name, value in vars(ours).items() if callable(value) and name in dir(owner)}
    assert overridden - {"__init__"} == set(hooks), "a method of uvicorn is overridden without being listed"
    for name in hooks:
        upstream = inspect.signature(getattr(owner, name))
        assert list(inspect.signature(getattr(ours, name)).parameters) == list(upstream.parameters), name
        assert inspect.iscoroutinefunction(getattr(owner, name)) is inspect.iscoroutinefunction(
            getattr(ours, name)
        )


class _ShuttingDownLikeTheDrain(_compat.UvicornServer):
    """A server whose shutdown uses the state nexus_platform._server.drain's does (in the same order)."""

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for each in _compat.listening_servers(self):
            each.close()
        for connection in _compat.open_connections(self):
            connection.shutdown()
        await _compat.shut_down_lifespan(self)


def test_the_server_state_the_drain_reads() -> None:
    async def scenario() -> None:
        server = _ShuttingDownLikeTheDrain(uvicorn.Config(_app, host="127.0.0.1", port=0, log_config=None))
        serving = asyncio.create_task(server.serve())
        for _ in range(200):
            if server.started or serving.done():
                break
            await asyncio.sleep(0.05)
        assert server.started
        listening = _compat.listening_servers(server)
        assert listening
        assert all(isinstance(each, asyncio.Server) for each in listening)
        assert _compat.open_connections(server) == []
        assert _compat.request_tasks(server) == set()
        host, port = listening[0].sockets[0].getsockname()[:2]
        reader, writer = await asyncio.open_connection(host, port)
        for _ in range(200):
            if _compat.open_connections(server):
                break
            await asyncio.sleep(0.05)
        [connection] = _compat.open_connections(server)
        connection.shutdown()  # idle: closed at once
        assert await asyncio.wait_for(reader.read(), 10) == b""
        writer.close()
        server.should_exit = True
        await asyncio.wait_for(serving, 10)
        assert _lifespan_events == ["lifespan.startup", "lifespan.shutdown"]

    asyncio.run(scenario())


def test_the_request_cycle_and_keep_alive_timer_of_the_protocol() -> None:
    async def scenario() -> None:
        config = uvicorn.Config(_app, timeout_keep_alive=_compat.uvicorn_seconds(0.05))
        config.load()
        protocol = _compat.UvicornHttpProtocol(config=config, server_state=ServerState(), app_state={})
        assert _compat.request_cycle(protocol) is None  # before the first request
        assert not _compat.keep_alive_timer_armed(protocol)
        _compat.arm_keep_alive_timer(protocol)
        assert _compat.keep_alive_timer_armed(protocol)
        timer = protocol.timeout_keep_alive_task
        _compat.cancel_keep_alive_timer(protocol)
        assert timer is not None
        assert timer.cancelled()
        assert not _compat.keep_alive_timer_armed(protocol)

    asyncio.run(scenario())
