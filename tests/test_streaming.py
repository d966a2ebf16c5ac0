"""Streaming responses under real uvicorn (`python -m app`): long streams, stalls, shutdown, disconnects.

The service gets a stream endpoint the way an author writes one (nexus_platform's event_stream in
app/service.py), whose producer counts its starts and clean-ups and checks, in its clean-up, that the
platform's HTTP client is still open. Every test ends the processes it started.
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from devtools.live import LiveService, live_services
from tests.edits import edit_file

pytestmark = pytest.mark.xdist_group("streaming")

STREAM_ENDPOINTS = """

@get("/v1/test/stream", summary="Server-sent events (streaming tests)", tags=["test"])
async def test_stream(
    request: Request,
    chunks: Annotated[int, Parameter(ge=0, le=1000)],
    interval: Annotated[float, Parameter(ge=0, le=10)],
    stall: Annotated[float, Parameter(ge=0, le=600)] = 0,
) -> Response:
    nexus = nexus_of(request)
    counters = nexus.state.setdefault("streams", {"started": 0, "released": 0, "http_open": 0})

    async def produce():
        counters["started"] += 1
        try:
            for index in range(chunks):
                yield {"index": index}
                await asyncio.sleep(interval)
            await asyncio.sleep(stall)
        finally:
            counters["released"] += 1
            if not nexus.http.is_closed:  # raises once the lifespan has closed it
                counters["http_open"] += 1
                logging.getLogger("test").warning("stream clean-up: HTTP client still open")

    return event_stream(produce())


@get("/v1/test/audio", summary="A byte stream that stalls (streaming tests)", tags=["test"])
async def test_audio(request: Request, stall: Annotated[float, Parameter(ge=0, le=600)] = 0) -> Response:
    async def produce():
        yield b"RIFF" + bytes(4096)
        await asyncio.sleep(stall)
        yield bytes(4096)

    return byte_stream(produce(), "audio/wav")


@get("/v1/test/slow", summary="Sleeps (streaming tests)", tags=["test"])
async def test_slow(request: Request, seconds: Annotated[float, Parameter(ge=0, le=60)]) -> dict[str, float]:
    counters = nexus_of(request).state.setdefault("slow", {"started": 0, "released": 0})
    counters["started"] += 1
    try:
        await asyncio.sleep(seconds)
    finally:
        counters["released"] += 1
    return {"slept": seconds}


@get("/v1/test/blocking", summary="Blocking work in the bounded pool (streaming tests)", tags=["test"])
async def test_blocking(
    request: Request, seconds: Annotated[float, Parameter(ge=0, le=60)], cooperative: bool = True
) -> dict[str, int]:
    nexus = nexus_of(request)
    counters = nexus.state.setdefault("blocking", {"started": 0, "stopped_early": 0})

    def work() -> int:
        counters["started"] += 1
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if cooperative and cancelled():
                counters["stopped_early"] += 1
                return 0
            time.sleep(0.02)
        return 1

    return {"done": await run_blocking(nexus, work)}


@get("/v1/test/state", summary="Counters, tasks and threads (streaming tests)", tags=["test"])
async def test_state(request: Request) -> dict[str, object]:
    state = nexus_of(request).state
    return {
        "streams": state.get("streams", {}),
        "slow": state.get("slow", {}),
        "blocking": state.get("blocking", {}),
        "tasks": len(asyncio.all_tasks()),
        "threads": threading.active_count(),
    }
"""


@pytest.fixture(scope="module")
def service(rendered, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default service, with the test endpoints added in its own module."""
    target = tmp_path_factory.mktemp("streaming") / "svc"
    shutil.copytree(rendered("default"), target)
    module = target / "app" / "service.py"
    edit_file(
        module,
        ("from litestar import Request, post", "from litestar import Request, Response, get, post"),
        ("import time\n", "import asyncio\nimport logging\nimport threading\nimport time\n"),
        ("from litestar.params import JSONBody", "from litestar.params import JSONBody, Parameter"),
        (
            "from nexus_platform import ServiceSpec, current_request_id, nexus_of",
            "from nexus_platform import (ServiceSpec, byte_stream, cancelled, current_request_id, event_stream,"
            " nexus_of, run_blocking)",
        ),
        ("\n\nservice = ServiceSpec(", STREAM_ENDPOINTS + "\n\nservice = ServiceSpec("),
        (
            "route_handlers=[echo],",
            "route_handlers=[echo, test_stream, test_audio, test_slow, test_blocking, test_state],",
        ),
    )
    return target


@pytest.fixture
def live(service: Path, tmp_path: Path) -> Iterator:
    with live_services(service, tmp_path, DRAIN_SECONDS="0") as start:
        yield start


def events(service: LiveService, timeout: float = 60, **params: float) -> list[str]:
    """The data of every server-sent event of one stream, read to its end."""
    with httpx.stream("GET", f"{service.url}/v1/test/stream", params=params, timeout=timeout) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        return [line.removeprefix("data: ") for line in response.iter_lines() if line.startswith("data: ")]


def access_lines(service: LiveService, path: str) -> list[dict]:
    time.sleep(0.2)  # routine lines are flushed within 50 ms
    lines = [json.loads(line) for line in service.log().splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("logger") == "nexus.access" and line["path"] == path]


def state(service: LiveService) -> dict:
    return httpx.get(f"{service.url}/v1/test/state").json()


def test_a_stream_longer_than_the_request_timeout_completes(live) -> None:
    service = live(REQUEST_TIMEOUT_SECONDS="1.5")
    started = time.monotonic()
    data = events(service, chunks=4, interval=1)
    assert time.monotonic() - started > 3  # more than twice REQUEST_TIMEOUT_SECONDS
    assert data == [json.dumps({"index": index}, separators=(",", ":")) for index in range(4)] + ["[DONE]"]
    [line] = access_lines(service, "/v1/test/stream")
    assert line["status"] == 200
    assert "outcome" not in line
    assert line["duration_ms"] > 3000
    assert line["bytes"] == sum(len(f"data: {each}\n\n") for each in data)


def test_a_stalled_stream_ends_with_an_error_event_and_says_why(live) -> None:
    service = live(STREAM_IDLE_TIMEOUT_SECONDS="1", REQUEST_TIMEOUT_SECONDS="30")
    started = time.monotonic()
    data = events(service, chunks=1, interval=0, stall=60)
    elapsed = time.monotonic() - started
    assert 0.9 < elapsed < 5, elapsed
    assert data[0] == '{"index":0}'
    error = json.loads(data[-1])["error"]
    assert error["code"] == "stream_idle_timeout"
    assert error["type"] == "timeout_error"
    assert "[DONE]" not in data
    [line] = access_lines(service, "/v1/test/stream")
    assert line["status"] == 200
    assert line["outcome"] == "idle_timeout"
    assert state(service)["streams"] == {"started": 1, "released": 1, "http_open": 1}


def test_a_stalled_byte_stream_is_cut_visibly_never_ended_cleanly(live) -> None:
    service = live(STREAM_IDLE_TIMEOUT_SECONDS="1")
    complete = httpx.get(f"{service.url}/v1/test/audio")
    assert complete.headers["content-type"] == "audio/wav"
    assert len(complete.content) == 8196
    received = bytearray()

    def read_all() -> None:
        with httpx.stream(
            "GET", f"{service.url}/v1/test/audio", params={"stall": 60}, timeout=30
        ) as response:
            for chunk in response.iter_bytes():
                received.extend(chunk)

    with pytest.raises(httpx.RemoteProtocolError):
        read_all()
    assert len(received) == 4100  # the first chunk, then an incomplete chunked body: not a clean end
    cut = access_lines(service, "/v1/test/audio")[-1]
    assert (cut["status"], cut["outcome"], cut["bytes"]) == (200, "idle_timeout", 4100)


def test_a_stream_that_never_starts_is_bounded_by_the_request_timeout(live) -> None:
    service = live(REQUEST_TIMEOUT_SECONDS="1", STREAM_IDLE_TIMEOUT_SECONDS="30")
    data = events(service, chunks=0, interval=0, stall=60)
    assert json.loads(data[-1])["error"]["code"] == "timeout"
    assert access_lines(service, "/v1/test/stream")[0]["outcome"] == "first_byte_timeout"


def test_sigterm_gives_a_stream_the_grace_period_then_an_error_event_and_exit_0(live) -> None:
    service = live(SHUTDOWN_GRACE_SECONDS="2")
    with httpx.stream(
        "GET", f"{service.url}/v1/test/stream", params={"chunks": 100, "interval": 0.25}, timeout=30
    ) as response:
        lines = response.iter_lines()
        assert next(line for line in lines if line.startswith("data: ")) == 'data: {"index":0}'
        signalled = time.monotonic()
        service.signal(signal.SIGTERM)
        data = [line.removeprefix("data: ") for line in lines if line.startswith("data: ")]
    ended = time.monotonic() - signalled
    assert 1.8 < ended < 6, ended  # the grace period, then the end
    assert len(data) > 4  # chunks kept coming during the grace period
    error = json.loads(data[-1])["error"]
    assert error["code"] == "shutting_down"
    assert error["type"] == "service_unavailable_error"
    assert service.process.wait(timeout=15) == 0
    log = service.log()
    assert "stream clean-up: HTTP client still open" in log  # the lifespan closed it only afterwards
    assert "RuntimeError" not in log
    assert "Traceback" not in log
    [line] = access_lines(service, "/v1/test/stream")
    assert line["outcome"] == "shutdown"


def test_sigterm_answers_a_request_still_running_after_the_grace_with_503(live) -> None:
    service = live(SHUTDOWN_GRACE_SECONDS="1")
    with ThreadPoolExecutor(1) as pool:
        slow = pool.submit(httpx.get, f"{service.url}/v1/test/slow?seconds=30", timeout=30)
        time.sleep(0.5)
        service.signal(signal.SIGTERM)
        answer = slow.result()
    assert answer.status_code == 503
    assert answer.json()["error"]["code"] == "shutting_down"
    assert answer.headers["retry-after"] == "1"
    assert service.process.wait(timeout=15) == 0
    [line] = access_lines(service, "/v1/test/slow")
    assert (line["status"], line["outcome"]) == (503, "shutdown")


def test_fifty_clients_that_disconnect_mid_stream_leave_nothing_behind(live) -> None:
    service = live(MAX_CONCURRENT_REQUESTS="50")
    before = state(service)

    def abandon(_: int) -> None:
        with httpx.stream(
            "GET", f"{service.url}/v1/test/stream", params={"chunks": 1000, "interval": 0.05}, timeout=30
        ) as response:
            next(line for line in response.iter_lines() if line.startswith("data: "))
        # leaving the block closes the connection mid-stream

    with ThreadPoolExecutor(10) as pool:
        list(pool.map(abandon, range(50)))
    deadline = time.monotonic() + 10
    while (after := state(service))["streams"].get("released", 0) < 50 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert after["streams"] == {"started": 50, "released": 50, "http_open": 50}
    assert after["tasks"] <= before["tasks"] + 1, (before, after)
    assert after["threads"] <= before["threads"], (before, after)
    # every slot is free again: 50 concurrent requests are all admitted
    with ThreadPoolExecutor(10) as pool:
        statuses = list(
            pool.map(lambda _: httpx.get(f"{service.url}/v1/test/slow?seconds=0.3").status_code, range(50))
        )
    assert statuses == [200] * 50
    outcomes = {line.get("outcome") for line in access_lines(service, "/v1/test/stream")}
    assert outcomes == {"client_disconnected"}


def test_a_client_that_abandons_a_slow_request_frees_its_slot(live) -> None:
    service = live(MAX_CONCURRENT_REQUESTS="1")
    with socket.create_connection(("127.0.0.1", service.port)) as raw:
        raw.sendall(b"GET /v1/test/slow?seconds=30 HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.3)
    # the handler is cancelled once the disconnect is noticed (the slot is busy until then: 503)
    deadline = time.monotonic() + 5
    while (answer := httpx.get(f"{service.url}/v1/test/state")).status_code == 503:
        assert time.monotonic() < deadline, "the abandoned request still holds the only slot"
        time.sleep(0.1)
    assert answer.json()["slow"] == {"started": 1, "released": 1}
    assert httpx.get(f"{service.url}/v1/test/slow?seconds=0").status_code == 200
    [abandoned, _] = access_lines(service, "/v1/test/slow")
    assert abandoned["status"] == 499
    assert abandoned["outcome"] == "client_disconnected"


def test_blocking_work_of_timed_out_requests_keeps_its_slots_and_can_stop_early(live) -> None:
    service = live(MAX_CONCURRENT_REQUESTS="2", REQUEST_TIMEOUT_SECONDS="0.5")
    threads = state(service)["threads"]
    with ThreadPoolExecutor(2) as pool:
        timed_out = list(
            pool.map(lambda _: httpx.get(f"{service.url}/v1/test/blocking?seconds=3", timeout=10), range(2))
        )
    assert [answer.status_code for answer in timed_out] == [504, 504]
    # the threads were told and stopped early; until they end, their slots stay taken (503, not a queue)
    deadline = time.monotonic() + 5
    while (answer := httpx.get(f"{service.url}/v1/test/state")).status_code == 503:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    after = answer.json()
    assert after["blocking"] == {"started": 2, "stopped_early": 2}
    assert after["threads"] <= threads + 2  # never more threads than MAX_CONCURRENT_REQUESTS
    assert httpx.get(f"{service.url}/v1/test/blocking?seconds=0").json() == {"done": 1}


def test_blocking_work_that_runs_on_holds_its_slot_until_it_ends(live) -> None:
    service = live(MAX_CONCURRENT_REQUESTS="1", REQUEST_TIMEOUT_SECONDS="0.3")
    started = time.monotonic()
    timed_out = httpx.get(f"{service.url}/v1/test/blocking?seconds=4&cooperative=false", timeout=10)
    assert timed_out.status_code == 504
    assert time.monotonic() - started < 3  # the thread still has at least a second to run
    assert httpx.post(f"{service.url}/v1/echo", json={"input": "x"}).status_code == 503
    deadline = time.monotonic() + 10
    while httpx.post(f"{service.url}/v1/echo", json={"input": "x"}).status_code == 503:
        assert time.monotonic() < deadline, "the slot was never given back"
        time.sleep(0.1)
    assert time.monotonic() - started > 3.5  # given back when the thread ended, not before


def test_head_works_wherever_get_does(live) -> None:
    service = live()
    for path in (
        "/health",
        "/readyz",
        "/v1/metadata",
        "/v1/models",
        "/v1/test/state",
        "/schema/openapi.json",
    ):
        get = httpx.get(f"{service.url}{path}")
        head = httpx.head(f"{service.url}{path}")
        assert head.status_code == get.status_code == 200, path
        assert head.content == b""
        assert head.headers["content-type"] == get.headers["content-type"]
