"""The service under test: its spec and identity, where its files are, and how to run it for real."""

import dataclasses
import importlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from litestar.testing import TestClient

from nexus_platform._config.facts import ServiceFacts, read_facts
from nexus_platform._edge.asgi import NexusASGI
from nexus_platform._identity import Identity
from nexus_platform._spec import ServiceSpec

__all__ = ["Client", "LiveService", "NexusService", "free_port", "load_service"]

# a started test client of a service's app
Client = TestClient[Any]


@dataclass(frozen=True)
class NexusService:
    """A service as the contract sees it: `spec` and `identity` (what app/main.py passes to create_app)
    and `root`, its folder (release/, requirements*, .env.example, README.md; `python -m <package>` runs
    there)."""

    spec: ServiceSpec
    identity: Identity
    root: Path

    @cached_property
    def facts(self) -> ServiceFacts:
        return read_facts(self.identity.facts_file)

    @property
    def import_root(self) -> Path:
        """The folder the service's package is imported from (usually `root`)."""
        package = importlib.import_module(self.identity.package)
        return Path(str(package.__file__)).resolve().parents[self.identity.package.count(".") + 1]

    def environ(self, **environment: str) -> dict[str, str]:
        """The environment of an in-process test app: quiet logs, and readiness independent of this
        machine's GPUs (a test that wants them sets GPU_MIN_COUNT); then `environment`."""
        quiet = {"LOG_LEVEL": "WARNING"} | ({"GPU_MIN_COUNT": "0"} if self.identity.gpu else {})
        return quiet | environment

    def with_routes(self, *handlers: object) -> ServiceSpec:
        """The service's spec with test-only routes added (the contract's own endpoints)."""
        routes = [*self.spec.route_handlers, *handlers]
        return dataclasses.replace(self.spec, route_handlers=routes)  # type: ignore[arg-type]  # Litestar handlers

    def create_app(
        self, spec: ServiceSpec | None = None, environ: Mapping[str, str] | None = None
    ) -> NexusASGI:
        from nexus_platform._app import create_app

        return create_app(
            spec if spec is not None else self.spec, self.identity, self.environ(**(environ or {}))
        )


def load_service(main: str = "app.main") -> NexusService:
    """The service whose module `main` (app/main.py) defines `service` and `IDENTITY`."""
    module = importlib.import_module(main)
    spec, identity = getattr(module, "service", None), getattr(module, "IDENTITY", None)
    if not isinstance(spec, ServiceSpec) or not isinstance(identity, Identity):
        raise TypeError(f"{main} must define `service` (a ServiceSpec) and `IDENTITY` (an Identity)")
    root = Path(str(module.__file__)).resolve().parents[main.count(".")]
    return NexusService(spec=spec, identity=identity, root=root)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class LiveService:
    """`python -m <package>` in a subprocess on a free port; its stdout (JSON lines) goes to a file."""

    def __init__(self, service: NexusService, log_folder: Path, environment: Mapping[str, str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_folder / f"service-{self.port}.log"
        path = os.pathsep.join(filter(None, [str(service.import_root), os.environ.get("PYTHONPATH")]))
        env = {
            **os.environ,
            "PYTHONPATH": path,
            "SERVICE_HOST": "127.0.0.1",
            "SERVICE_PORT": str(self.port),
            **environment,
        }
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", service.identity.package],
                cwd=service.root,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def wait_healthy(self, timeout: float = 60.0) -> None:  # slack for a busy CI runner
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"service exited with {self.process.returncode}:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass  # not listening yet
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
