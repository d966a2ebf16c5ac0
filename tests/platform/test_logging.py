"""Logs that cannot lose a line or stall the service, redaction, client aborts, trace context."""

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
from typing import ClassVar, Literal

import httpx
import msgspec
import pytest
from litestar import Request, get
from litestar.testing import TestClient
from nexus_platform import CheckResult, ConfigError, PlatformSettings, ServiceSpec, nexus_of
from nexus_platform._config.settings import load_settings
from nexus_platform.testing import LiveService, NexusService, free_port, json_lines

from tests.platform.conftest import Logs
from tests.platform.example.main import service

# --- no line lost, no caller blocked (the queue itself: test_log_queue.py) -------------------------


def _request_ok(client: httpx.Client, url: str) -> float:
    started = time.perf_counter()
    assert client.get(url).status_code == 200
    return time.perf_counter() - started


@pytest.mark.slow
def test_a_stalled_stdout_never_stalls_the_service_and_logging_resumes(nexus_service: NexusService) -> None:
    """Nobody reads the service's stdout: the pipe (64 KiB) and the buffer (64 KiB) fill, lines are dropped
    and counted, /health keeps answering; once stdout is read again a WARNING says how many were lost."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            filter(None, [str(nexus_service.import_root), os.environ.get("PYTHONPATH")])
        ),
        "SERVICE_HOST": "127.0.0.1",
        "SERVICE_PORT": str(port),
        "DRAIN_SECONDS": "0",
        "LOG_BUFFER_BYTES": "65536",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", nexus_service.identity.package],
        cwd=nexus_service.root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(f"{url}/health", timeout=1)
                break
            except httpx.TransportError:
                assert process.poll() is None, "the service exited"
                assert time.monotonic() < deadline, "the service did not start"
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
        assert reported
        assert all(line["level"] == "WARNING" for line in reported)
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


def test_secrets_never_reach_the_log(make_client: Callable[..., TestClient], logs: Logs) -> None:
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
    assert client.get("/v1/leaky", headers={"x-request-id": "leaky-1"}).status_code == 500
    logs.access("leaky-1")
    text = json.dumps(logs.lines)
    for secret in ("hunter2-pw", "abc123-token", "sk-live-0123456789"):
        assert secret not in text
    assert "admin:***@backend.invalid" in text
    assert "token=***" in text
    assert "model=x" in text


def test_a_configuration_error_does_not_print_url_credentials() -> None:
    with pytest.raises(ConfigError) as error:
        load_settings(PlatformSettings, {"BACKEND_URL": "http://admin:hunter2@host/a b"})
    assert "BACKEND_URL" in str(error.value)
    assert "hunter2" not in str(error.value)


# --- access lines ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_client_that_hangs_up_during_upload_is_a_499_not_a_server_error(
    live_service: Callable[..., LiveService],
) -> None:
    live = live_service(LOG_LEVEL="INFO")
    with socket.create_connection(("127.0.0.1", live.port)) as sock:
        sock.sendall(
            b"POST /v1/test/echo HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
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


def test_access_line_fields_are_bounded(make_client: Callable[..., TestClient], logs: Logs) -> None:
    client = make_client(LOG_LEVEL="INFO")
    assert client.get("/" + "p" * 60_000, headers={"x-request-id": "long-path"}).status_code == 404
    line = logs.access("long-path")
    assert len(json.dumps(line)) < 1500
    assert line["path"].startswith("/ppp")
    assert line["path"].endswith("…")


# --- readiness ------------------------------------------------------------------------------------


def test_a_readiness_check_that_changes_state_is_a_warning_once(
    make_client: Callable[..., TestClient], logs: Logs
) -> None:
    states: Iterator[Literal["pass", "fail"]] = iter(["pass", "pass", "fail", "fail", "pass"])

    async def flaky(_nexus: object) -> CheckResult:
        status = next(states)
        return CheckResult(status, output=None if status == "pass" else "backend said no")

    client = make_client(
        ServiceSpec(readiness_checks={"flaky:state": flaky}), LOG_LEVEL="INFO", READINESS_CACHE_SECONDS="0"
    )
    assert [client.get("/readyz").status_code for _ in range(5)] == [200, 200, 503, 503, 200]
    assert client.get("/health", headers={"x-request-id": "after-checks"}).status_code == 200
    logs.access("after-checks")  # the readiness warnings were written before
    warnings = [line for line in logs.lines if line["logger"] == "nexus.readiness"]
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
    logs: Logs,
    traceparent: str | None,
    continued: bool,
) -> None:
    client = make_client(LOG_LEVEL="INFO")
    headers = {"x-request-id": "traced"} | ({"traceparent": traceparent} if traceparent else {})
    assert client.post("/v1/test/echo", json={"input": "x"}, headers=headers).status_code == 200
    trace_id = logs.access("traced")["trace_id"]
    assert (trace_id == TRACE) is continued
    assert len(trace_id) == 32
    assert int(trace_id, 16) != 0
    assert trace_id == trace_id.lower()


def test_trace_and_request_ids_travel_through_the_pooled_client(
    make_client: Callable[..., TestClient], logs: Logs, backend: str
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
    logged_trace = logs.access("fwd-2")["trace_id"]
    lines = logs.lines
    assert first["x-request-id"] == "fwd-1"
    assert second["x-request-id"] == "fwd-2"
    version, trace_id, parent_id, flags = first["traceparent"].split("-")
    assert (version, trace_id, flags) == ("00", TRACE, "01")
    assert parent_id != "b7ad6b7169203331"
    assert second["traceparent"].split("-")[1] == logged_trace
    # every line of the request carries both ids
    [own] = [line for line in lines if line["logger"] == "test.call" and line["request_id"] == "fwd-2"]
    assert own["trace_id"] == logged_trace


def test_a_tracing_middleware_from_the_service_spec_sees_the_logged_trace(
    make_client: Callable[..., TestClient], logs: Logs
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
    assert (
        client.post("/v1/test/echo", json={"input": "x"}, headers={"x-request-id": "mw-1"}).status_code == 200
    )
    assert (
        client.post(
            "/v1/test/echo", json={"input": "x"}, headers={"x-request-id": "mw-2", "traceparent": PARENT}
        ).status_code
        == 200
    )
    assert [value.split("-")[1] for value in seen] == [logs.access("mw-1")["trace_id"], TRACE]
    assert seen[1] == PARENT


def test_tracing_can_be_switched_off(make_client: Callable[..., TestClient], logs: Logs) -> None:
    client = make_client(LOG_LEVEL="INFO", TRACING_ENABLED="false")
    assert (
        client.get("/health", headers={"x-request-id": "untraced", "traceparent": PARENT}).status_code == 200
    )
    assert "trace_id" not in logs.access("untraced")


def test_settings_shown_at_start_up_hide_credentials(
    make_client: Callable[..., TestClient], logs: Logs
) -> None:
    make_client(LOG_LEVEL="INFO", BACKEND_URL=URL_WITH_CREDENTIALS, BACKEND_API_KEY="sk-live-0123456789")
    lines = logs.wait_for(lambda line: line["message"] == "service starting")
    [starting] = [line for line in lines if line["message"] == "service starting"]
    settings = starting["settings"]
    assert settings["BACKEND_API_KEY"] == "***"
    assert settings["BACKEND_URL"] == "http://admin:***@backend.invalid/v1/?token=***&model=x"
    assert msgspec.json.encode(starting).count(b"hunter2") == 0
