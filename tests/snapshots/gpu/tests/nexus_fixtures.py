# Managed by nexus-template: `copier update` replaces this file. Your fixtures belong in tests/conftest.py.
"""The platform's fixtures, loaded as a pytest plugin (`-p tests.nexus_fixtures` in pyproject.toml):
`client` and `make_client` (an in-process app for any settings) and `live_service` (`python -m app`).

They are available in every test module; your own fixtures go in tests/conftest.py, which is yours.
"""

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from litestar.testing import TestClient

from app.nexus import _identity as identity
from app.nexus._capabilities import BACKEND
from app.nexus._factory import create_app
from app.nexus._spec import ServiceSpec
from app.service import service

ROOT = Path(__file__).resolve().parents[1]
# Quiet logs; readiness independent of this machine's GPUs (tests/test_gpu.py asks for them explicitly).
QUIET = {"LOG_LEVEL": "WARNING"} | ({"GPU_MIN_COUNT": "0"} if identity.GPU else {})
if BACKEND == "openai":  # a wrapper service is tested in front of a real OpenAI-compatible server
    from tests.fake_backend import start  # type: ignore[import-not-found, unused-ignore]  # rendered for wrapper services only

    BACKEND_URL, BACKEND_REQUESTS = start()
    QUIET["BACKEND_URL"] = BACKEND_URL


@pytest.fixture
def make_client() -> Iterator[Callable[..., TestClient]]:
    """make_client(spec=service, **environment) -> a started TestClient of a freshly built app."""
    clients: list[TestClient] = []

    def make(spec: ServiceSpec = service, **environment: str) -> TestClient:
        client = TestClient(create_app(spec, environ={**QUIET, **environment}))
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: Callable[..., TestClient]) -> TestClient:
    return make_client()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class LiveService:
    """`python -m app` in a subprocess on a free port; its stdout (JSON lines) goes to a file."""

    def __init__(self, tmp_path: Path, environment: dict[str, str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp_path / f"service-{self.port}.log"
        env = {**os.environ, "SERVICE_HOST": "127.0.0.1", "SERVICE_PORT": str(self.port), **environment}
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "app"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
            )

    def wait_healthy(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"service exited with {self.process.returncode}:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.05)
        raise AssertionError(f"service did not answer /health within {timeout}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text()

    def signal(self, number: int = signal.SIGTERM) -> None:
        self.process.send_signal(number)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


@pytest.fixture
def live_service(tmp_path: Path) -> Iterator[Callable[..., LiveService]]:
    """live_service(**environment) -> a running LiveService; stopped (by its pid) after the test."""
    started: list[LiveService] = []

    def start(**environment: str) -> LiveService:
        live = LiveService(tmp_path, {"DRAIN_SECONDS": "0", **environment})
        started.append(live)
        live.wait_healthy()
        return live

    yield start
    for live in started:
        live.stop()
