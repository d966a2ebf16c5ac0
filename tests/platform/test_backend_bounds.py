"""A wrapper's outbound HTTP (nexus_platform.openai._proxy, NexusContext's clients): a real `python -m`
process of the example service as a wrapper (Identity.backend "openai") in front of the fake backend
(tests/platform/fake_backend.py).

Nothing secret goes back out (a backend that echoes the key), backend answers are bounded and memory comes
back after them (the wrapper's VmRSS before and after, within 20%), readiness sends the backend's key, and
the keep-alive race with a backend that closes idle connections loses no request. The sizes are the
issue's scaled down, their ratio to the bounds kept: a 100 MiB answer against 8 MiB (400 MiB against the
default 32 MiB), a 20 MB line against 64 KiB (300 MB against 1 MiB).
"""

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from nexus_platform.testing import free_port

from tests.platform import fake_backend

pytestmark = pytest.mark.slow  # real uvicorn processes

ROOT = Path(__file__).resolve().parents[2]
KEY = "sk-backend-key-0123456789abcdefghij"
MAX_RESPONSE = 8 << 20
MAX_EVENT = 64 << 10
USER = [{"role": "user", "content": "hello"}]
# the example service as `python -m app` runs it, but wrapping a backend with every capability forwarded
WRAPPER = """
import dataclasses, pathlib, sys
from nexus_platform import ServiceSpec, create_app_or_exit, serve
from tests.platform.example.main import IDENTITY
serve(create_app_or_exit(ServiceSpec(), dataclasses.replace(
    IDENTITY, backend="openai", facts_file=pathlib.Path(sys.argv[1]))))
"""
FACTS = """SERVICE_VERSION=1.0.0
SERVICE_DESCRIPTION=A wrapper
SERVICE_OWNER=platform-tests
SERVICE_CAPABILITIES=chat.completions, embeddings
"""


class Wrapper:
    """The wrapper process on a free port; its JSON log lines go to a file."""

    def __init__(self, folder: Path, environment: dict[str, str]) -> None:
        facts = folder / "service.env"
        facts.write_text(FACTS)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = folder / f"wrapper-{self.port}.log"
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "SERVICE_HOST": "127.0.0.1",
            "SERVICE_PORT": str(self.port),
            "DRAIN_SECONDS": "0",
            "LOG_LEVEL": "WARNING",
            "READINESS_CACHE_SECONDS": "0",
            **environment,
        }
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-c", WRAPPER, str(facts)], cwd=ROOT, env=env, stdout=log, stderr=log
            )
        deadline = time.monotonic() + 60  # slack for a busy runner
        while True:
            assert self.process.poll() is None, f"the wrapper exited:\n{self.log_path.read_text()}"
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the wrapper did not start"
                time.sleep(0.05)
        self.http = httpx.Client(base_url=self.url, timeout=30)

    def rss(self) -> int:
        """The process's resident memory in bytes (VmRSS)."""
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        [line] = [line for line in status.splitlines() if line.startswith("VmRSS:")]
        return int(line.split()[1]) * 1024

    def log_lines(self) -> list[dict[str, Any]]:
        text = self.log_path.read_text()
        return [json.loads(line) for line in text.splitlines() if line.startswith("{")]

    def stop(self) -> None:
        self.http.close()
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait()


@pytest.fixture(scope="module")
def backend() -> tuple[str, Any]:
    """The fake backend, refusing requests without KEY."""
    return fake_backend.start(api_key=KEY)


@pytest.fixture(scope="module")
def wrapper(backend: tuple[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Wrapper]:
    live = Wrapper(
        tmp_path_factory.mktemp("wrapper"),
        {
            "BACKEND_URL": backend[0],
            "BACKEND_API_KEY": KEY,
            "BACKEND_HEALTH_PATH": "/v1/models",
            "BACKEND_MAX_RESPONSE_BYTES": str(MAX_RESPONSE),
            "BACKEND_MAX_EVENT_BYTES": str(MAX_EVENT),
        },
    )
    yield live
    live.stop()


def _chat(wrapper: Wrapper, model: str, **fields: Any) -> httpx.Response:
    return wrapper.http.post("/v1/chat/completions", json={"model": model, "messages": USER, **fields})


def _events(answer: httpx.Response) -> list[Any]:
    return [json.loads(line[6:]) for line in answer.text.splitlines() if line.startswith("data: {")]


def _settled_rss(wrapper: Wrapper, before: int) -> int:
    """The wrapper's RSS once it is back within 20% of `before`, or after 5 s (memory is given back as
    the answers' buffers go, a moment after the response)."""
    deadline = time.monotonic() + 5
    while (rss := wrapper.rss()) > before * 1.2 and time.monotonic() < deadline:
        time.sleep(0.1)
    return rss


@pytest.fixture
def warm(wrapper: Wrapper) -> Callable[[], int]:
    """warm() -> the wrapper's RSS after an ordinary answer, stream and embedding (everything imported
    and set up that any request needs)."""

    def measure() -> int:
        assert _chat(wrapper, "backend-model").status_code == 200
        assert _chat(wrapper, "backend-model", stream=True).status_code == 200
        embedded = wrapper.http.post("/v1/embeddings", json={"model": "dims-4", "input": ["a", "b"]})
        assert embedded.status_code == 200
        return wrapper.rss()

    return measure


def test_a_backend_error_that_echoes_the_key_reaches_the_client_redacted(wrapper: Wrapper) -> None:
    answer = _chat(wrapper, "echo-key-model")
    assert answer.status_code == 401
    error = answer.json()["error"]
    assert error["code"] == "invalid_api_key"
    assert error["message"] == "Incorrect API key provided: Bearer ***"
    assert KEY not in answer.text
    request_id = answer.headers["x-request-id"]

    streamed = _chat(wrapper, "echo-key-model", stream=True)
    assert streamed.status_code == 200  # the error comes as the stream's event
    [event] = _events(streamed)
    assert event["error"]["message"] == "The backend failed: upstream refused Bearer ***"
    assert KEY not in streamed.text

    deadline = time.monotonic() + 10
    while not any(line.get("request_id") == request_id for line in wrapper.log_lines()):
        assert time.monotonic() < deadline, "the backend's error was not logged"
        time.sleep(0.05)
    [logged] = [line for line in wrapper.log_lines() if line.get("request_id") == request_id]
    assert logged["level"] == "WARNING"
    assert logged["backend_status"] == 401
    assert "Incorrect API key provided: Bearer ***" in logged["message"]
    assert KEY not in wrapper.log_path.read_text()


@pytest.mark.parametrize("model", [f"huge-{100 << 20}", f"chunked-{100 << 20}"])
def test_a_backend_answer_over_the_bound_is_cut_with_502_and_memory_comes_back(
    wrapper: Wrapper, warm: Callable[[], int], model: str
) -> None:
    warm()
    # the first cut answer leaves the allocator's arenas sized for the bound (glibc keeps up to about the
    # bound's worth of freed heap); what must not happen is growth with each answer, as before (1.5 GB held
    # after nine): measured from there, three more cost nothing that stays
    assert _chat(wrapper, model).status_code == 502
    before = wrapper.rss()
    for _ in range(3):
        started = time.monotonic()
        answer = _chat(wrapper, model)
        assert answer.status_code == 502
        assert answer.json()["error"]["code"] == "backend_response_too_large"
        assert time.monotonic() - started < 10  # cut at the bound, not read to the end
    assert _settled_rss(wrapper, before) <= before * 1.2


def test_large_embeddings_pass_within_the_bound_and_are_cut_beyond_it(
    wrapper: Wrapper, warm: Callable[[], int]
) -> None:
    warm()
    inputs = [f"word {index}" for index in range(2048)]  # about 20 KB of request
    fitting = wrapper.http.post("/v1/embeddings", json={"model": "dims-256", "input": inputs})
    assert fitting.status_code == 200
    assert MAX_RESPONSE / 2 < len(fitting.content) < MAX_RESPONSE
    assert len(fitting.json()["data"][2047]["embedding"]) == 256
    del fitting
    # an answer within the bound may leave the allocator's arenas sized for it (the concern is
    # what answers over the bound leave): measured from here
    before = wrapper.rss()
    for _ in range(3):  # 2,048 inputs of 4,096 dimensions: about 110 MB of JSON each
        answer = wrapper.http.post("/v1/embeddings", json={"model": "dims-4096", "input": inputs})
        assert answer.status_code == 502
        assert answer.json()["error"]["code"] == "backend_response_too_large"
    assert _settled_rss(wrapper, before) <= before * 1.2


def test_a_stream_line_over_the_bound_ends_the_stream_with_an_error_event(
    wrapper: Wrapper, warm: Callable[[], int]
) -> None:
    before = warm()
    answer = _chat(wrapper, "long-line-20000000", stream=True)
    assert answer.status_code == 200
    [event] = _events(answer)
    assert event["error"]["code"] == "backend_event_too_large"
    assert _settled_rss(wrapper, before) <= before * 1.2


def test_readiness_sends_the_backends_key_and_the_request_id(
    wrapper: Wrapper, backend: tuple[str, Any]
) -> None:
    url, handler = backend
    assert httpx.get(f"{url}/v1/models").status_code == 401  # the backend requires the key
    handler.gets.clear()
    ready = wrapper.http.get("/readyz", headers={"x-request-id": "probe-42"})
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"]["backend:responseTime"][0]["status"] == "pass"
    assert ("/v1/models", "probe-42", f"Bearer {KEY}") in handler.gets


def test_a_pool_smaller_than_the_concurrency_limit_is_refused_at_start_up(
    backend: tuple[str, Any], tmp_path: Path
) -> None:
    environment = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "SERVICE_HOST": "127.0.0.1",
        "SERVICE_PORT": str(free_port()),
        "BACKEND_URL": backend[0],
        "MAX_CONCURRENT_REQUESTS": "1000",
    }
    (tmp_path / "service.env").write_text(FACTS)
    refused = subprocess.run(
        [sys.executable, "-c", WRAPPER, str(tmp_path / "service.env")],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines() == [
        "configuration error: MAX_CONCURRENT_REQUESTS (1000) exceeds BACKEND_MAX_CONNECTIONS (64): raise "
        "BACKEND_MAX_CONNECTIONS to at least MAX_CONCURRENT_REQUESTS, or lower the limit"
    ]


def test_a_backend_closing_idle_connections_loses_no_request(tmp_path: Path) -> None:
    """The backend closes a connection idle for 0.3 s; the pool would keep it 5 s: each request, spaced
    around 0.3 s, may take a connection the backend is closing, and is tried again."""
    url, handler = fake_backend.start(idle_seconds=0.3)
    live = Wrapper(tmp_path, {"BACKEND_URL": url, "BACKEND_KEEPALIVE_SECONDS": "5"})
    try:
        statuses = []
        for index in range(40):
            time.sleep(0.27 + (index % 8) * 0.01)
            statuses.append(_chat(live, "backend-model").status_code)
        assert statuses == [200] * 40, live.log_path.read_text()[-2000:]
        assert len(handler.requests) >= 40
    finally:
        live.stop()


def test_a_wrapper_with_keys_forwards_nothing_for_a_caller_without_one(
    backend: tuple[str, Any], tmp_path: Path
) -> None:
    inbound = "inbound-" + "i" * 32
    live = Wrapper(tmp_path, {"BACKEND_URL": backend[0], "BACKEND_API_KEY": KEY, "API_KEYS": inbound})
    try:
        forwarded = len(backend[1].requests)
        for headers in ({}, {"authorization": f"Bearer {KEY}"}, {"authorization": "Bearer " + "x" * 40}):
            answer = live.http.post(
                "/v1/chat/completions",
                json={"model": "backend-model", "messages": [{"role": "user", "content": "hi"}]},
                headers=headers,
            )
            assert answer.status_code == 401, answer.text  # the backend's key is not a caller's key
        assert len(backend[1].requests) == forwarded
        answer = live.http.post(
            "/v1/chat/completions",
            json={"model": "backend-model", "messages": [{"role": "user", "content": "hi"}]},
            headers={"authorization": f"Bearer {inbound}"},
        )
        assert answer.status_code == 200, answer.text
        assert len(backend[1].requests) == forwarded + 1
    finally:
        live.stop()
