"""Load, faults and bad input against a rendered service under real uvicorn (`python -m app`).

The service gets a slow endpoint the way an author adds one (in app/service.py), so that timeouts,
saturation and draining can be driven from outside. Every test ends the processes it started.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

import httpx
import pytest

from devtools.live import LiveService
from tests.edits import edit_file

pytestmark = pytest.mark.xdist_group("robustness")

SLOW_ENDPOINTS = """

@get("/v1/slow", summary="Sleeps (robustness tests)", tags=["test"])
async def slow(seconds: Annotated[float, Parameter(ge=0, le=60)], request: Request) -> dict[str, float]:
    counters = nexus_of(request).state.setdefault("counters", {"started": 0, "released": 0})
    counters["started"] += 1
    try:
        await asyncio.sleep(seconds)
    finally:
        counters["released"] += 1
    return {"slept": seconds}


@get("/v1/counters", summary="How many slow requests started and released their resources", tags=["test"])
async def counters(request: Request) -> dict[str, int]:
    return nexus_of(request).state.get("counters", {"started": 0, "released": 0})
"""


@pytest.fixture(scope="module")
def service(rendered, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default service, with slow endpoints added in its own module."""
    target = tmp_path_factory.mktemp("robust") / "svc"
    shutil.copytree(rendered("default"), target)
    module = target / "app" / "service.py"
    edit_file(
        module,
        ("from litestar import Request, post", "from litestar import Request, get, post"),
        ("import time\n", "import asyncio\nimport time\n"),
        ("from litestar.params import JSONBody", "from litestar.params import JSONBody, Parameter"),
        ("\n\nservice = ServiceSpec(", SLOW_ENDPOINTS + "\n\nservice = ServiceSpec("),
        ("route_handlers=[echo],", "route_handlers=[echo, slow, counters],"),
    )
    return target


@pytest.fixture
def live(service: Path, tmp_path: Path) -> Iterator:
    started: list[LiveService] = []

    def start(**environment: str) -> LiveService:
        started.append(LiveService(service, tmp_path, environment={"DRAIN_SECONDS": "0", **environment}))
        return started[-1]

    yield start
    for each in started:
        each.stop()


def openai_error(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]


# --- timeouts, saturation ---------------------------------------------------------------------------


def test_a_request_past_the_timeout_is_cancelled_and_answered_504(live) -> None:
    service = live(REQUEST_TIMEOUT_SECONDS="0.5")
    started = time.monotonic()
    response = httpx.get(f"{service.url}/v1/slow", params={"seconds": 5}, timeout=10)
    elapsed = time.monotonic() - started
    assert openai_error(response, 504)["code"] == "timeout"
    assert elapsed < 2
    assert response.headers["x-request-id"]
    assert httpx.get(f"{service.url}/v1/counters").json() == {"started": 1, "released": 1}


def test_saturation_answers_503_at_once_while_probes_keep_answering(live) -> None:
    service = live(MAX_CONCURRENT_REQUESTS="2")
    with ThreadPoolExecutor(2) as pool:
        slow = [
            pool.submit(httpx.get, f"{service.url}/v1/slow", params={"seconds": 2}, timeout=10)
            for _ in range(2)
        ]
        time.sleep(0.5)
        started = time.monotonic()
        rejected = httpx.post(f"{service.url}/v1/echo", json={"input": "x"})
        answer_ms = (time.monotonic() - started) * 1000
        error = openai_error(rejected, 503)
        assert error["code"] == "overloaded"
        assert rejected.headers["retry-after"] == "1"
        # "at once": well before the in-flight requests end (2 s); generous for a loaded CI machine
        assert answer_ms < 1000, f"overload answer took {answer_ms:.0f} ms"
        for path in ("/health", "/readyz", "/v1/metadata", "/v1/models"):
            probe_started = time.monotonic()
            assert httpx.get(f"{service.url}{path}").status_code == 200, path
            assert time.monotonic() - probe_started < 1.0, path
        assert [future.result().status_code for future in slow] == [200, 200]
    log = service.wait_for_log('"status":503')
    [line] = [line for line in log.splitlines() if '"status":503' in line]
    print(
        f"overload answer: {answer_ms:.1f} ms end to end, {json.loads(line)['duration_ms']} ms in the server"
    )


def test_readyz_with_a_hanging_backend_stays_within_its_budget(live) -> None:
    hanging = socket.socket()
    hanging.bind(("127.0.0.1", 0))
    hanging.listen(8)  # accepts connections, never answers
    try:
        port = hanging.getsockname()[1]
        service = live(BACKEND_URL=f"http://127.0.0.1:{port}", READINESS_TIMEOUT_SECONDS="0.5")
        started = time.monotonic()
        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(lambda _: httpx.get(f"{service.url}/readyz", timeout=5), range(4)))
        assert time.monotonic() - started < 2.5  # the budget (0.5 s), not the client's 30 s timeout
        for answer in answers:
            assert answer.status_code == 503
            assert answer.json()["checks"]["backend:responseTime"][0]["output"] == "timed out after 0.5s"
    finally:
        hanging.close()


# --- shutdown ---------------------------------------------------------------------------------------


def test_sigterm_drains_then_exits_0_without_cutting_in_flight_requests(live) -> None:
    drain, grace = 1.5, 10.0
    service = live(DRAIN_SECONDS=str(drain), SHUTDOWN_GRACE_SECONDS=str(grace))
    with ThreadPoolExecutor(1) as pool:
        in_flight = pool.submit(httpx.get, f"{service.url}/v1/slow", params={"seconds": 2.5}, timeout=20)
        time.sleep(0.3)
        signalled = time.monotonic()
        service.signal(signal.SIGTERM)
        time.sleep(0.1)
        ready = httpx.get(f"{service.url}/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["shutdown"][0]["status"] == "fail"
        assert httpx.get(f"{service.url}/health").status_code == 200  # still serving while draining
        assert in_flight.result().status_code == 200
    assert service.process.wait(timeout=drain + grace + 5) == 0
    elapsed = time.monotonic() - signalled
    assert drain <= elapsed < drain + grace
    assert "service stopped" in service.log()
    print(f"SIGTERM to exit: {elapsed:.2f} s (drain {drain} s, in-flight request 2.5 s)")


def test_a_second_signal_exits_at_once(live) -> None:
    service = live(DRAIN_SECONDS="30")
    service.signal(signal.SIGTERM)
    time.sleep(0.3)
    assert httpx.get(f"{service.url}/readyz").status_code == 503
    started = time.monotonic()
    service.signal(signal.SIGINT)
    service.process.wait(timeout=5)
    assert time.monotonic() - started < 2


# --- bad input --------------------------------------------------------------------------------------


class BadInput(NamedTuple):
    name: str
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    status: int


JSON_HEADERS = {"content-type": "application/json"}
DEEP = b'{"input": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
BAD_INPUT = [
    BadInput("malformed JSON", "POST", "/v1/echo", JSON_HEADERS, b"{not json", 400),
    BadInput("wrong type", "POST", "/v1/echo", JSON_HEADERS, b'{"input": 5}', 400),
    BadInput("missing field", "POST", "/v1/echo", JSON_HEADERS, b'{"repeat": 2}', 400),
    BadInput("unknown field", "POST", "/v1/echo", JSON_HEADERS, b'{"input": "x", "colour": "red"}', 400),
    BadInput(
        "huge integer",
        "POST",
        "/v1/echo",
        JSON_HEADERS,
        b'{"input": "x", "repeat": 1' + b"0" * 400 + b"}",
        400,
    ),
    BadInput("huge float", "POST", "/v1/echo", JSON_HEADERS, b'{"input": "x", "repeat": 1e400}', 400),
    BadInput("NaN", "POST", "/v1/echo", JSON_HEADERS, b'{"input": "x", "repeat": NaN}', 400),
    BadInput("deeply nested JSON", "POST", "/v1/echo", JSON_HEADERS, DEEP, 400),
    BadInput("invalid UTF-8", "POST", "/v1/echo", JSON_HEADERS, b'{"input": "\xff\xfe"}', 400),
    BadInput("empty body", "POST", "/v1/echo", JSON_HEADERS, b"", 400),
    BadInput("array body", "POST", "/v1/echo", JSON_HEADERS, b"[1, 2]", 400),
    BadInput("text/plain", "POST", "/v1/echo", {"content-type": "text/plain"}, b'{"input": "x"}', 415),
    BadInput(
        "form", "POST", "/v1/echo", {"content-type": "application/x-www-form-urlencoded"}, b"input=x", 415
    ),
    BadInput("too large", "POST", "/v1/echo", JSON_HEADERS, b'{"input": "' + b"x" * 2_000_000 + b'"}', 413),
    BadInput("bad query parameter", "GET", "/v1/slow?seconds=abc", {}, b"", 400),
    BadInput("query parameter out of range", "GET", "/v1/slow?seconds=-1", {}, b"", 400),
    BadInput("oversized headers", "GET", "/health", {"x-padding": "x" * 40_000}, b"", 431),
    BadInput("unknown path", "GET", "/v1/nope", {}, b"", 404),
    BadInput("wrong method", "DELETE", "/v1/echo", {}, b"", 405),
]


@pytest.fixture(scope="module")
def shared(service: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveService]:
    running = LiveService(service, tmp_path_factory.mktemp("shared-logs"), environment={"DRAIN_SECONDS": "0"})
    yield running
    running.stop()


@pytest.mark.parametrize("case", BAD_INPUT, ids=[case.name for case in BAD_INPUT])
def test_bad_input_gets_a_clear_4xx_and_nothing_breaks(shared: LiveService, case: BadInput) -> None:
    response = httpx.request(
        case.method, f"{shared.url}{case.path}", headers=case.headers, content=case.body, timeout=10
    )
    error = openai_error(response, case.status)
    assert error["message"]
    assert "Traceback" not in response.text
    assert "/app/" not in response.text
    assert "site-packages" not in response.text
    assert response.headers["x-request-id"]
    assert httpx.get(f"{shared.url}/health").status_code == 200
    assert shared.process.poll() is None


@pytest.mark.parametrize("odd", ["a" * 200, "has space", "semi;colon", "é-accent", "tab\there"])
def test_odd_request_ids_are_replaced_and_never_echoed(shared: LiveService, odd: str) -> None:
    response = httpx.get(f"{shared.url}/health", headers=[(b"x-request-id", odd.encode())])
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"])
    time.sleep(0.05)
    assert odd not in shared.log()


def test_secrets_never_leak(live) -> None:
    secret = "sk-do-not-leak-0123456789"
    service = live(BACKEND_API_KEY=secret, LOG_LEVEL="DEBUG")
    answers = [
        httpx.get(f"{service.url}{path}").text for path in ("/v1/metadata", "/readyz", "/schema/openapi.json")
    ]
    answers.append(httpx.post(f"{service.url}/v1/echo", content=b"{").text)
    assert all(secret not in answer for answer in answers)
    log = service.log()
    assert secret not in log
    assert '"BACKEND_API_KEY":"***"' in log


# --- fuzzing ----------------------------------------------------------------------------------------

FUZZ_EXAMPLES = 150  # per operation; `make fuzz` runs a longer campaign


def test_schemathesis_finds_no_server_error_and_no_schema_violation(
    shared: LiveService, tmp_path: Path
) -> None:
    report = tmp_path / "junit.xml"
    result = subprocess.run(
        [
            str(Path(sys.executable).with_name("schemathesis")), "run", f"{shared.url}/schema/openapi.json",
            "--checks", "all", "--max-examples", str(FUZZ_EXAMPLES), "--workers", "1",
            "--exclude-path", "/v1/slow", "--seed", "20261126", "--report", "junit", "--report-junit-path", str(report),
        ],
        capture_output=True, text=True, timeout=600, check=False, cwd=tmp_path,  # its cache stays out of the repo
    )  # fmt: skip
    summary = re.search(r"(\d+) generated, (\d+) passed", result.stdout)
    assert result.returncode == 0, result.stdout[-6000:]
    assert summary, result.stdout[-2000:]
    assert int(summary.group(1)) >= 100
    print(f"schemathesis: {summary.group(0)}")
