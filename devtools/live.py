"""A rendered service running for real: `python -m app` (the production entrypoint) on a free port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx

from devtools.render import PYTHON


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


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
    def __init__(
        self,
        service: Path,
        log_dir: Path,
        *,
        port: int | None = None,
        wrapper: Sequence[str] = (),
        environment: Mapping[str, str] | None = None,
    ) -> None:
        """`port`: a fixed one (e.g. a restarted replica's), else a free one. `wrapper` goes before the
        command, e.g. ("prlimit", "--nofile=512:512") (it must exec it, so that `process` stays the
        service's own process). `environment`: settings over this process's environment."""
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_dir / f"service-{self.port}-{time.monotonic_ns()}.log"
        env = {
            **os.environ,
            "SERVICE_HOST": "127.0.0.1",
            "SERVICE_PORT": str(self.port),
            **(environment or {}),
        }
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [*wrapper, PYTHON, "-m", "app"], cwd=service, env=env, stdout=log, stderr=subprocess.STDOUT
            )
        health = wait_for_health(
            f"{self.url}/health", died=lambda: self.process.poll() is not None, details=self.log
        )
        assert health.status_code == 200, health.text

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, text: str, timeout: float = 10) -> str:
        """The log once it holds `text` (a writer thread writes the lines, a little after the event)."""
        deadline = time.monotonic() + timeout
        while text not in (log := self.log()):
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} not logged within {timeout}s:\n{log[-3000:]}")
            time.sleep(0.05)
        return log

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
        started.append(LiveService(service, log_dir, environment={**defaults, **environment}))
        return started[-1]

    try:
        yield start
    finally:
        for each in started:
            each.stop()
