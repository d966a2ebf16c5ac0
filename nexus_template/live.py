"""A rendered service running for real: `python -m app` (the production entrypoint) on a free port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from nexus_template.render import PYTHON


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_health(
    url: str,
    *,
    died: Callable[[], bool] = lambda: False,
    details: Callable[[], str] = lambda: "",
    timeout: float = 30,
    interval: float = 0.05,
) -> httpx.Response:
    """Poll GET `url` until something answers; RuntimeError (with `details()`) when the server died first
    or nothing answered within `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return httpx.get(url, timeout=2)
        except httpx.TransportError:
            if died():
                raise RuntimeError(f"the server exited before answering {url}:\n{details()}") from None
            if time.monotonic() > deadline:
                raise RuntimeError(f"no answer from {url} within {timeout}s:\n{details()}") from None
            time.sleep(interval)


class LiveService:
    def __init__(self, service: Path, log_dir: Path, **environment: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_dir / f"service-{self.port}.log"
        env = {**os.environ, "SERVICE_HOST": "127.0.0.1", "SERVICE_PORT": str(self.port), **environment}
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [PYTHON, "-m", "app"], cwd=service, env=env, stdout=log, stderr=subprocess.STDOUT
            )
        health = wait_for_health(
            f"{self.url}/health", died=lambda: self.process.poll() is not None, details=self.log
        )
        assert health.status_code == 200, health.text

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def signal(self, number: int = signal.SIGTERM) -> None:
        self.process.send_signal(number)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


@contextmanager
def live_services(service: Path, log_dir: Path, **defaults: str) -> Iterator[Callable[..., LiveService]]:
    """start(**environment) -> a LiveService of `service` (`defaults` under `environment`); every service
    started is stopped (by its pid) when the block ends."""
    started: list[LiveService] = []

    def start(**environment: str) -> LiveService:
        started.append(LiveService(service, log_dir, **{**defaults, **environment}))
        return started[-1]

    try:
        yield start
    finally:
        for each in started:
            each.stop()
