# Managed by nexus-template: `copier update` replaces this file. Your tests belong in tests/test_service.py.
"""Logs that cannot lose a line or stall the service, redaction, client aborts, trace context."""

import asyncio
import atexit
import contextlib
import json
import logging
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar, Literal, TextIO

import httpx
import msgspec
import pytest
from litestar import Request, get
from litestar.testing import TestClient

from app.nexus import CheckResult, ServiceSpec, nexus_of
from app.nexus._config import ConfigError, PlatformSettings, load_settings
from app.nexus._logs import AccessLog, configure_logging, flush_logs, held_logs
from app.service import service
from tests.nexus_fixtures import ROOT, free_port


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def logged(capfd: pytest.CaptureFixture[str]) -> list[dict]:
    # held: a line logged by a background task meanwhile would be written over the first lines read
    with held_logs(5) as flushed:
        assert flushed, "the log writer did not finish within 5 s"
        return json_lines(capfd.readouterr().out)


# --- no line lost, no caller blocked --------------------------------------------------------------


def test_no_line_is_lost_with_threads_and_the_event_loop_logging_at_once(tmp_path: Path) -> None:
    threads, per_thread, from_loop = 8, 3000, 20000
    with (tmp_path / "out.jsonl").open("w") as stream:
        access_log = configure_logging("INFO", stream, buffer_bytes=1 << 30)
        logger = logging.getLogger("test.threads")
        start = threading.Barrier(threads + 1)

        def worker(number: int) -> None:
            start.wait()
            for index in range(per_thread):
                logger.info("thread line", extra={"thread_no": number, "index": index})

        async def loop_lines() -> None:
            start.wait()
            for index in range(from_loop):
                access_log.write("GET", f"/loop/{index}", 200, 0.001, f"loop-{index}", "")
                if index % 500 == 0:
                    await asyncio.sleep(0)

        workers = [threading.Thread(target=worker, args=(number,)) for number in range(threads)]
        for each in workers:
            each.start()
        asyncio.run(loop_lines())
        for each in workers:
            each.join()
        assert flush_logs(30)
    lines = json_lines((tmp_path / "out.jsonl").read_text())
    from_threads = {(line["thread_no"], line["index"]) for line in lines if line["logger"] == "test.threads"}
    loop_ids = [line["request_id"] for line in lines if line["logger"] == "nexus.access"]
    assert len(from_threads) == threads * per_thread
    assert loop_ids == [f"loop-{index}" for index in range(from_loop)]  # all there, in order
    assert len(lines) == threads * per_thread + from_loop
    assert access_log.writer.dropped == 0


def _wakeups(thread: threading.Thread) -> int:
    """How often the thread went to sleep and was woken (Linux)."""
    status = Path(f"/proc/self/task/{thread.native_id}/status").read_text()
    [count] = [line.split()[1] for line in status.splitlines() if line.startswith("voluntary_ctxt_switches")]
    return int(count)


def _collect(read_end: int, into: Path) -> subprocess.Popen[bytes]:
    """Another process reads the pipe, as a container runtime does (a thread here would need the GIL)."""
    with into.open("wb") as out:
        reader = subprocess.Popen(["cat"], stdin=read_end, stdout=out)
    os.close(read_end)
    return reader


def _pipe_logging(buffer_bytes: int = 1 << 20) -> tuple[int, TextIO, AccessLog]:
    """Logging to a pipe: its read end, the stream, the access log."""
    read_end, write_end = os.pipe()
    stream = os.fdopen(write_end, "w")
    return read_end, stream, configure_logging("INFO", stream, buffer_bytes=buffer_bytes)


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="counts thread wake-ups in Linux's /proc")
def test_the_event_loop_writes_its_own_lines_and_leaves_the_writer_thread_asleep(tmp_path: Path) -> None:
    """A writer thread woken for each batch waits for the GIL while the loop is busy, and is woken at
    every release: about a tenth of a JSON POST's time. The attached loop writes its lines itself (to a
    file here: a pipe's reader may fall behind on a busy machine, and the thread then writes the rest,
    as the next test shows)."""
    received = tmp_path / "stdout.jsonl"
    stream = received.open("w")
    access_log = configure_logging("INFO", stream)
    writer = access_log.writer
    # the new writer thread starts, writes a line and goes to sleep before the count begins (on a busy
    # machine its start-up alone can take several wake-ups)
    logging.getLogger("test.loop").info("before the loop")
    assert writer.flush(5)
    time.sleep(0.2)

    async def requests() -> tuple[int, float]:
        writer.attach(asyncio.get_running_loop())
        try:
            before = _wakeups(writer._thread)
            for index in range(5000):
                access_log.write("POST", "/v1/echo", 200, 0.001, f"loop-{index}", "")
                if index % 50 == 0:
                    await asyncio.sleep(0.001)  # a busy server: the loop runs between requests
            logged_at = time.monotonic()
            while b"loop-4999" not in received.read_bytes():  # no flush: the loop's timer writes it
                assert time.monotonic() - logged_at < 5, "the loop did not write its last batch"
                await asyncio.sleep(0.01)
            return _wakeups(writer._thread) - before, time.monotonic() - logged_at
        finally:
            writer.detach(asyncio.get_running_loop())

    woken, last_line_after = asyncio.run(requests())
    logging.getLogger("test.loop").info("after the loop")  # the thread writes again once detached
    assert flush_logs(5)
    stream.close()
    lines = json_lines(received.read_text())
    ids = [line["request_id"] for line in lines if line.get("request_id", "").startswith("loop-")]
    assert ids == [f"loop-{index}" for index in range(5000)]  # all there, in order
    assert [line["message"] for line in lines if line["logger"] == "test.loop"] == [
        "before the loop",
        "after the loop",
    ]
    print(f"writer thread woken {woken} times for 5,000 lines; last line out after {last_line_after:.3f} s")
    assert woken <= 3


def test_a_full_pipe_never_blocks_the_event_loop_and_the_thread_writes_the_rest(tmp_path: Path) -> None:
    """Nobody reads stdout while the loop logs 2 MB: the loop goes on, and once stdout is read again
    every line arrives whole and in order (the buffer holds them all)."""
    read_end, stream, access_log = _pipe_logging(buffer_bytes=1 << 26)
    writer = access_log.writer
    path = "/v1/" + "x" * 400
    received = tmp_path / "stdout.jsonl"
    rescued = threading.Event()

    def rescue() -> None:  # a loop blocked in a write would wait for a reader forever
        rescued.set()
        _collect(read_end, received)

    guard = threading.Timer(20, rescue)
    guard.start()

    async def requests() -> None:
        writer.attach(asyncio.get_running_loop())
        try:
            for index in range(4000):
                access_log.write("POST", path, 200, 0.001, f"full-{index}", "")
                if index % 100 == 0:
                    await asyncio.sleep(writer.FLUSH_SECONDS)  # the loop's timer writes what fits
        finally:
            writer.detach(asyncio.get_running_loop())

    asyncio.run(requests())
    guard.cancel()
    assert not rescued.is_set(), "the event loop waited for stdout"
    reader = _collect(read_end, received)  # stdout is read again
    assert flush_logs(20)
    stream.close()
    reader.wait(10)
    lines = json_lines(received.read_text())
    ids = [line["request_id"] for line in lines if line.get("request_id", "").startswith("full-")]
    assert ids == [f"full-{index}" for index in range(4000)]
    assert writer.dropped == 0


def test_a_terminal_nobody_reads_never_blocks_the_event_loop() -> None:
    """poll() says a terminal has room even when the next write blocks (a paused terminal, Ctrl-S): the
    loop leaves a terminal to the thread."""
    controller, terminal = os.openpty()
    stream = os.fdopen(terminal, "w")
    access_log = configure_logging("INFO", stream, buffer_bytes=1 << 22)
    writer = access_log.writer
    reading = threading.Event()

    def drain() -> None:
        reading.wait()
        with contextlib.suppress(OSError):  # the terminal closed
            while os.read(controller, 65536):
                pass

    threading.Thread(target=drain, daemon=True).start()
    guard = threading.Timer(20, reading.set)  # a loop blocked in a write waits for a reader
    guard.start()

    async def requests() -> None:
        writer.attach(asyncio.get_running_loop())
        try:
            for index in range(3000):
                access_log.write("POST", "/v1/" + "x" * 400, 200, 0.001, f"tty-{index}", "")
                if index % 100 == 0:
                    await asyncio.sleep(writer.FLUSH_SECONDS)
        finally:
            writer.detach(asyncio.get_running_loop())

    asyncio.run(requests())
    guard.cancel()
    blocked = reading.is_set()
    reading.set()  # the terminal is read again: the thread writes what it holds
    assert writer.flush(20)
    stream.close()
    os.close(controller)
    assert not blocked, "the event loop waited for the terminal"


def test_lines_are_written_when_the_loop_stopped_without_detaching(tmp_path: Path) -> None:
    """A loop that stops with a batch waiting (a second Ctrl-C skips the lifespan's end) leaves it, and
    every later line, to the thread, at its usual pace; a later loop attaches cleanly."""
    out = tmp_path / "out.jsonl"
    stream = out.open("w")
    access_log = configure_logging("INFO", stream)
    writer = access_log.writer

    async def request(request_id: str, *, loop_runs_on: bool = False) -> bool:
        writer.attach(asyncio.get_running_loop())
        access_log.write("GET", "/v1/x", 200, 0.001, request_id, "")  # the loop's timer writes it
        deadline = time.monotonic() + 5
        while loop_runs_on and f'"{request_id}"'.encode() not in out.read_bytes():
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.01)
        return True

    def written(*request_ids: str) -> bool:
        deadline = time.monotonic() + 5
        while not all(f'"{request_id}"'.encode() in out.read_bytes() for request_id in request_ids):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    asyncio.run(request("before-stop"))  # no detach
    access_log.write("GET", "/v1/x", 200, 0.001, "after-stop", "")  # the same thread, no loop running
    assert written("before-stop", "after-stop")  # no flush_logs: the thread's own pace
    assert asyncio.run(request("next-loop", loop_runs_on=True))  # its own timer, not the stopped loop's
    assert flush_logs(5)
    stream.close()


def test_configuring_logging_again_adds_no_writer_and_no_exit_hook(tmp_path: Path) -> None:
    """Every create_app configures logging (a test suite builds hundreds of apps): one writer thread and
    one exit hook per stream, however often."""
    with (tmp_path / "out.jsonl").open("w") as stream:
        configure_logging("INFO", stream)
        threads, hooks = threading.active_count(), atexit._ncallbacks()
        for _ in range(50):
            configure_logging("INFO", stream)
        assert (threading.active_count(), atexit._ncallbacks()) == (threads, hooks)
        logging.getLogger("test.again").warning("once")
        assert flush_logs(5)
    assert len(json_lines((tmp_path / "out.jsonl").read_text())) == 1  # one handler: the line once


def test_held_logs_write_nothing_until_the_reader_is_done(tmp_path: Path) -> None:
    """A reader of the stream (tests reading captured stdout) must not race a batch being written."""
    out = tmp_path / "out.jsonl"
    with out.open("w") as stream:
        configure_logging("INFO", stream)
        logger, stop = logging.getLogger("test.held"), threading.Event()

        def chatter() -> None:
            while not stop.is_set():
                logger.warning("chatter")
                time.sleep(0.001)

        thread = threading.Thread(target=chatter)
        thread.start()
        try:
            time.sleep(0.2)
            with held_logs(5) as flushed:
                size = out.stat().st_size
                logger.warning("logged while held")  # the holder may log: it waits for nothing
                time.sleep(0.3)
                assert flushed
                assert out.stat().st_size == size  # nothing written while held
        finally:
            stop.set()
            thread.join()
        assert flush_logs(5)
    lines = json_lines(out.read_text())  # every line whole: json.loads raises on a torn one
    assert {line["message"] for line in lines} == {"chatter", "logged while held"}


def _request_ok(client: httpx.Client, url: str) -> float:
    started = time.perf_counter()
    assert client.get(url).status_code == 200
    return time.perf_counter() - started


def test_a_stalled_stdout_never_stalls_the_service_and_logging_resumes(tmp_path: Path) -> None:
    """Nobody reads the service's stdout: the pipe (64 KiB) and the buffer (64 KiB) fill, lines are dropped
    and counted, /health keeps answering; once stdout is read again a WARNING says how many were lost."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "SERVICE_HOST": "127.0.0.1",
        "SERVICE_PORT": str(port),
        "DRAIN_SECONDS": "0",
        "LOG_BUFFER_BYTES": "65536",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "app"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(f"{url}/health", timeout=1)
                break
            except httpx.TransportError:
                assert process.poll() is None and time.monotonic() < deadline, "the service did not start"
                time.sleep(0.05)
        with httpx.Client(timeout=5) as client:
            # about 230 bytes per access line: 1,200 requests are twice what the pipe and buffer hold
            for index in range(1200):
                assert (
                    client.get(f"{url}/health", headers={"x-request-id": f"stall-{index}"}).status_code == 200
                )
            latencies = [_request_ok(client, f"{url}/health") for _ in range(30)]
            dropped = _metric(client.get(f"{url}/metrics").text, "nexus_log_lines_dropped_total")
        print(
            f"/health while stdout stalls: median {statistics.median(latencies) * 1000:.1f} ms, max {max(latencies) * 1000:.1f} ms"
        )
        assert statistics.median(latencies) < 0.1
        assert max(latencies) < 1.0
        assert dropped > 0

        lines: list[dict] = []
        output = process.stdout
        assert output is not None
        reader = threading.Thread(
            target=lambda: lines.extend(json.loads(line) for line in output), daemon=True
        )
        reader.start()  # stdout is read again
        deadline = time.monotonic() + 15
        while not any(line.get("request_id") == "after-stall" for line in lines):
            assert time.monotonic() < deadline, "logging did not resume"
            httpx.get(f"{url}/health", headers={"x-request-id": "after-stall"}, timeout=5)
            time.sleep(0.2)
        reported = [line for line in lines if line.get("logger") == "nexus.logs"]
        assert reported and all(line["level"] == "WARNING" for line in reported)
        final = _metric(httpx.get(f"{url}/metrics", timeout=5).text, "nexus_log_lines_dropped_total")
        assert sum(line["dropped_lines"] for line in reported) == final >= dropped
        # what was not dropped arrived whole and in order
        ids = [line["request_id"] for line in lines if line.get("request_id", "").startswith("stall-")]
        assert ids == sorted(ids, key=lambda each: int(each.split("-")[1]))
    finally:
        process.kill()
        process.wait(timeout=10)


def _metric(text: str, name: str) -> float:
    [value] = [float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + " ")]
    return value


# --- secrets --------------------------------------------------------------------------------------

URL_WITH_CREDENTIALS = "http://admin:hunter2-pw@backend.invalid/v1/?token=abc123-token&model=x"


def test_secrets_never_reach_the_log(
    make_client: Callable[..., TestClient], capfd: pytest.CaptureFixture[str]
) -> None:
    @get("/v1/leaky", tags=["test"])
    async def leaky(request: Request) -> dict[str, str]:
        settings = nexus_of(request).settings
        logging.getLogger("test.leaky").warning(
            "calling %s with key %s", settings.backend_url, settings.backend_api_key
        )
        raise RuntimeError(f"backend {settings.backend_url} refused key {settings.backend_api_key}")

    spec = ServiceSpec(route_handlers=[leaky])
    client = make_client(
        spec, LOG_LEVEL="INFO", BACKEND_URL=URL_WITH_CREDENTIALS, BACKEND_API_KEY="sk-live-0123456789"
    )
    assert client.get("/v1/leaky").status_code == 500
    text = json.dumps(logged(capfd))
    for secret in ("hunter2-pw", "abc123-token", "sk-live-0123456789"):
        assert secret not in text
    assert "admin:***@backend.invalid" in text and "token=***" in text and "model=x" in text


def test_a_configuration_error_does_not_print_url_credentials() -> None:
    with pytest.raises(ConfigError) as error:
        load_settings(PlatformSettings, {"BACKEND_URL": "http://admin:hunter2@host/a b"})
    assert "BACKEND_URL" in str(error.value) and "hunter2" not in str(error.value)


# --- access lines ---------------------------------------------------------------------------------


def test_a_client_that_hangs_up_during_upload_is_a_499_not_a_server_error(live_service: Callable) -> None:
    live = live_service(LOG_LEVEL="INFO")
    with socket.create_connection(("127.0.0.1", live.port)) as sock:
        sock.sendall(
            b"POST /v1/echo HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            b"x-request-id: hung-up\r\ncontent-length: 100000\r\n\r\n" + b'{"input": "' + b"a" * 1000
        )
        time.sleep(0.3)
    deadline = time.monotonic() + 10
    while not [line for line in json_lines(live.log()) if line.get("request_id") == "hung-up"]:
        assert time.monotonic() < deadline, live.log()
        time.sleep(0.1)
    time.sleep(0.2)
    lines = [line for line in json_lines(live.log()) if line.get("request_id") == "hung-up"]
    access = [line for line in lines if line["logger"] == "nexus.access"]
    assert [(line["status"], line["level"]) for line in access] == [(499, "INFO")]
    assert not [line for line in lines if line["level"] in {"ERROR", "CRITICAL"}]


def test_access_line_fields_are_bounded(
    make_client: Callable[..., TestClient], capfd: pytest.CaptureFixture[str]
) -> None:
    client = make_client(LOG_LEVEL="INFO")
    assert client.get("/" + "p" * 60_000, headers={"x-request-id": "long-path"}).status_code == 404
    [line] = [line for line in logged(capfd) if line.get("request_id") == "long-path"]
    assert len(json.dumps(line)) < 1500
    assert line["path"].startswith("/ppp") and line["path"].endswith("…")


# --- readiness ------------------------------------------------------------------------------------


def test_a_readiness_check_that_changes_state_is_a_warning_once(
    make_client: Callable[..., TestClient], capfd: pytest.CaptureFixture[str]
) -> None:
    states: Iterator[Literal["pass", "fail"]] = iter(["pass", "pass", "fail", "fail", "pass"])

    async def flaky(_nexus: object) -> CheckResult:
        status = next(states)
        return CheckResult(status, output=None if status == "pass" else "backend said no")

    client = make_client(
        ServiceSpec(readiness_checks={"flaky:state": flaky}), LOG_LEVEL="INFO", READINESS_CACHE_SECONDS="0"
    )
    assert [client.get("/readyz").status_code for _ in range(5)] == [200, 200, 503, 503, 200]
    warnings = [line for line in logged(capfd) if line["logger"] == "nexus.readiness"]
    assert [(line["level"], line["status"]) for line in warnings] == [
        ("WARNING", "fail"),
        ("WARNING", "pass"),
    ]
    assert "backend said no" in warnings[0]["message"]


# --- trace context --------------------------------------------------------------------------------

TRACE = "0af7651916cd43dd8448eb211c80319c"
PARENT = f"00-{TRACE}-b7ad6b7169203331-01"


class _Recorder(BaseHTTPRequestHandler):
    seen: ClassVar[list[dict[str, str]]] = []

    def do_GET(self) -> None:
        type(self).seen.append({key.lower(): value for key, value in self.headers.items()})
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def backend() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Recorder.seen = []
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _access(lines: list[dict], request_id: str) -> dict:
    [line] = [line for line in lines if line["logger"] == "nexus.access" and line["request_id"] == request_id]
    return line


@pytest.mark.parametrize(
    ("traceparent", "continued"),
    [
        (PARENT, True),
        (f"01-{TRACE}-b7ad6b7169203331-01-future-field", True),  # a later version may add fields
        (PARENT.upper(), False),  # hex must be lowercase
        (f"00-{'0' * 32}-b7ad6b7169203331-01", False),
        (f"00-{TRACE}-{'0' * 16}-01", False),
        (f"ff-{TRACE}-b7ad6b7169203331-01", False),
        (PARENT + "-extra", False),  # version 00 has exactly four fields
        ("garbage", False),
        (None, False),
    ],
)
def test_traceparent_is_continued_when_valid_and_started_otherwise(
    make_client: Callable[..., TestClient],
    capfd: pytest.CaptureFixture[str],
    traceparent: str | None,
    continued: bool,
) -> None:
    client = make_client(LOG_LEVEL="INFO")
    headers = {"x-request-id": "traced"} | ({"traceparent": traceparent} if traceparent else {})
    assert client.post("/v1/echo", json={"input": "x"}, headers=headers).status_code == 200
    trace_id = _access(logged(capfd), "traced")["trace_id"]
    assert (trace_id == TRACE) is continued
    assert len(trace_id) == 32 and int(trace_id, 16) != 0 and trace_id == trace_id.lower()


def test_trace_and_request_ids_travel_through_the_pooled_client(
    make_client: Callable[..., TestClient], capfd: pytest.CaptureFixture[str], backend: str
) -> None:
    @get("/v1/call", tags=["test"])
    async def call(request: Request) -> dict[str, int]:
        logging.getLogger("test.call").info("calling the backend")
        response = await nexus_of(request).http.get(backend)
        return {"status": response.status_code}

    client = make_client(ServiceSpec(route_handlers=[call]), LOG_LEVEL="INFO")
    assert client.get("/v1/call", headers={"x-request-id": "fwd-1", "traceparent": PARENT}).status_code == 200
    assert client.get("/v1/call", headers={"x-request-id": "fwd-2"}).status_code == 200
    first, second = _Recorder.seen
    lines = logged(capfd)
    assert first["x-request-id"] == "fwd-1" and second["x-request-id"] == "fwd-2"
    version, trace_id, parent_id, flags = first["traceparent"].split("-")
    assert (version, trace_id, flags) == ("00", TRACE, "01") and parent_id != "b7ad6b7169203331"
    assert second["traceparent"].split("-")[1] == _access(lines, "fwd-2")["trace_id"]
    # every line of the request carries both ids
    [own] = [line for line in lines if line["logger"] == "test.call" and line["request_id"] == "fwd-2"]
    assert own["trace_id"] == _access(lines, "fwd-2")["trace_id"]


def test_a_tracing_middleware_from_the_service_spec_sees_the_logged_trace(
    make_client: Callable[..., TestClient], capfd: pytest.CaptureFixture[str]
) -> None:
    """The hook for OpenTelemetry (docs/operations.md): middleware in ServiceSpec sees a `traceparent`
    for the same trace as the logs, also when the client sent none."""
    seen: list[str] = []

    def middleware(app: Callable) -> Callable:
        async def recording(scope: dict, receive: Callable, send: Callable) -> None:
            if scope["type"] == "http":
                seen.append(dict(scope["headers"]).get(b"traceparent", b"").decode())
            await app(scope, receive, send)

        return recording

    spec = ServiceSpec(
        route_handlers=service.route_handlers, middleware=[middleware], settings=service.settings
    )
    client = make_client(spec, LOG_LEVEL="INFO")
    assert client.post("/v1/echo", json={"input": "x"}, headers={"x-request-id": "mw-1"}).status_code == 200
    assert (
        client.post(
            "/v1/echo", json={"input": "x"}, headers={"x-request-id": "mw-2", "traceparent": PARENT}
        ).status_code
        == 200
    )
    lines = logged(capfd)
    assert [value.split("-")[1] for value in seen] == [_access(lines, "mw-1")["trace_id"], TRACE]
    assert seen[1] == PARENT


def test_tracing_can_be_switched_off(
    make_client: Callable[..., TestClient], capfd: pytest.CaptureFixture[str]
) -> None:
    client = make_client(LOG_LEVEL="INFO", TRACING_ENABLED="false")
    assert (
        client.get("/health", headers={"x-request-id": "untraced", "traceparent": PARENT}).status_code == 200
    )
    assert "trace_id" not in _access(logged(capfd), "untraced")


def test_settings_shown_at_start_up_hide_credentials(
    make_client: Callable[..., TestClient], capfd: pytest.CaptureFixture[str]
) -> None:
    make_client(LOG_LEVEL="INFO", BACKEND_URL=URL_WITH_CREDENTIALS, BACKEND_API_KEY="sk-live-0123456789")
    [starting] = [line for line in logged(capfd) if line["message"] == "service starting"]
    settings = starting["settings"]
    assert settings["BACKEND_API_KEY"] == "***"
    assert settings["BACKEND_URL"] == "http://admin:***@backend.invalid/v1/?token=***&model=x"
    assert msgspec.json.encode(starting).count(b"hunter2") == 0
