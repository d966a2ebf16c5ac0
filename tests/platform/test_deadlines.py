"""Every per-request deadline (request timeout, stream first byte and idle, slow body) is enforced by one
watchdog task on one clock, through the outer ASGI layer, driven here in process."""

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from litestar import Request, Response, get, post
from nexus_platform import Identity, ServiceSpec, create_app, event_stream
from nexus_platform._edge.asgi import NexusASGI


@get("/v1/test/slow", summary="Sleeps for a minute", tags=["test"])
async def slow() -> dict[str, str]:
    await asyncio.sleep(60)
    return {"late": "yes"}


@get("/v1/test/ticks", summary="A chunk every 0.05 s for 0.8 s, then silence", tags=["test"])
async def ticks() -> Response[object]:
    async def produce() -> AsyncIterator[dict[str, int]]:
        for index in range(16):
            yield {"tick": index}
            await asyncio.sleep(0.05)
        await asyncio.sleep(60)

    return event_stream(produce())


@post("/v1/test/upload", status_code=200, summary="Reads the whole body", tags=["test"])
async def upload(request: Request[Any, Any, Any]) -> dict[str, int]:
    return {"bytes": len(await request.body())}


def _app(make_identity: Callable[..., Identity], **environment: str) -> NexusASGI:
    spec = ServiceSpec(route_handlers=[slow, ticks, upload])
    return create_app(spec, make_identity(), {"LOG_LEVEL": "ERROR", **environment})


async def _call(
    app: NexusASGI, method: str, path: str, body: list[bytes] | None = None
) -> tuple[int, dict[bytes, bytes], bytes]:
    """One request through the ASGI layer; `body`: chunks of which the last never ends (a stalled client)."""
    headers = [(b"host", b"test")]
    if body is not None:
        headers += [(b"content-type", b"application/json"), (b"content-length", b"100000")]
    scope: Any = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 9000),
    }
    chunks = list(body or [])
    status, response_headers, sent = 0, {}, bytearray()

    async def receive() -> Any:
        if chunks:
            return {"type": "http.request", "body": chunks.pop(0), "more_body": True}
        await asyncio.sleep(3600)  # the client stalls (and never leaves)
        raise AssertionError("unreachable")

    async def send(message: Any) -> None:
        nonlocal status, response_headers
        if message["type"] == "http.response.start":
            status, response_headers = message["status"], dict(message["headers"])
        else:
            sent.extend(message.get("body", b""))

    await asyncio.wait_for(app(scope, receive, send), 10)
    return status, response_headers, bytes(sent)


def test_requests_past_the_timeout_are_answered_504_by_one_watchdog(
    make_identity: Callable[..., Identity],
) -> None:
    app = _app(make_identity, REQUEST_TIMEOUT_SECONDS="0.3")

    async def requests() -> tuple[list[tuple[int, dict[bytes, bytes], bytes]], set[str], float]:
        started = time.monotonic()
        calls = [asyncio.ensure_future(_call(app, "GET", "/v1/test/slow")) for _ in range(5)]
        await asyncio.sleep(0.1)
        watchers = {task.get_name() for task in asyncio.all_tasks() if task.get_name().startswith("nexus-")}
        return await asyncio.gather(*calls), watchers, time.monotonic() - started

    answers, watchers, seconds = asyncio.run(requests())
    assert watchers == {"nexus-exchanges"}  # one task watches every deadline of every request
    for status, headers, body in answers:
        assert status == 504
        assert json.loads(body)["error"]["code"] == "timeout"
        assert headers[b"x-should-retry"] == b"false"
    assert 0.3 <= seconds < 2
    assert app.timeouts == 5


def test_a_stream_outlives_the_request_timeout_but_not_its_idle_timeout(
    make_identity: Callable[..., Identity],
) -> None:
    app = _app(make_identity, REQUEST_TIMEOUT_SECONDS="0.3", STREAM_IDLE_TIMEOUT_SECONDS="0.4")
    started = time.monotonic()
    status, _, body = asyncio.run(_call(app, "GET", "/v1/test/ticks"))
    seconds = time.monotonic() - started
    events = [json.loads(event.removeprefix("data: ")) for event in body.decode().split("\n\n") if event]
    assert status == 200
    assert [event["tick"] for event in events[:-1]] == list(range(16))  # 0.8 s: past REQUEST_TIMEOUT
    assert events[-1]["error"]["code"] == "stream_idle_timeout"
    assert 1.1 <= seconds < 3  # 16 ticks 0.05 s apart, then 0.4 s of silence (and at most a tick more)
    assert app.timeouts == 1


def test_a_stalled_body_is_answered_408_and_frees_its_slot(make_identity: Callable[..., Identity]) -> None:
    app = _app(make_identity, BODY_TIMEOUT_SECONDS="0.3", REQUEST_TIMEOUT_SECONDS="30")
    started = time.monotonic()
    status, headers, body = asyncio.run(_call(app, "POST", "/v1/test/upload", [b"x" * 1000]))
    assert status == 408
    assert json.loads(body)["error"]["code"] == "body_timeout"
    assert headers[b"connection"] == b"close"
    assert 0.3 <= time.monotonic() - started < 2
    assert (app.in_flight, len(app.exchanges)) == (0, 0)


def test_a_cancellation_that_is_not_the_platforms_goes_on_unanswered(
    make_identity: Callable[..., Identity],
) -> None:
    """The server cancelling a request (its own shutdown) is not a timeout: nothing is sent for it."""
    app = _app(make_identity)

    async def cancelled() -> tuple[bool, int]:
        call = asyncio.ensure_future(_call(app, "GET", "/v1/test/slow"))
        await asyncio.sleep(0.1)
        call.cancel()
        try:
            await call
        except asyncio.CancelledError:
            return True, app.timeouts
        return False, app.timeouts

    assert asyncio.run(cancelled()) == (True, 0)
