"""The platform's tests: small apps built with nexus_platform.create_app around the example service
(tests/platform/example: its own endpoint and an implementation of every OpenAI capability), through the
fixtures of the nexus_platform.testing plugin, which services use too.

`nexus_service` is the example; `make_client(spec=None, identity=None, **environment)` builds and starts an
app (quiet logs); `make_identity(**fields)` is an Identity whose release/service.env is written to tmp_path;
`logs` reads the JSON lines the apps write to stdout. Tests that start processes are marked `slow`.
"""

import dataclasses
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from nexus_platform import Identity
from nexus_platform._observability.logs import held_logs
from nexus_platform.testing import (
    ContractTests,
    NexusService,
    client,  # noqa: F401  # the plugin's fixtures, around the example service below
    live_service,  # noqa: F401
    load_service,
    make_client,  # noqa: F401
)
from nexus_platform.testing._contract import offered_capabilities

EXAMPLE = "tests.platform.example.main"
FACTS = """SERVICE_VERSION=1.2.3
SERVICE_DESCRIPTION=A service of the platform tests
SERVICE_OWNER=platform-tests
SERVICE_CAPABILITIES={capabilities}
"""


@pytest.fixture(scope="session")
def nexus_service() -> NexusService:
    return load_service(EXAMPLE)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """The contract's capability tests once per capability the example offers (the plugin's own hook
    does this for a service's app/main.py)."""
    cls = metafunc.cls
    if "capability" in metafunc.fixturenames and cls is not None and issubclass(cls, ContractTests):
        metafunc.parametrize("capability", offered_capabilities(load_service(EXAMPLE)))


@pytest.fixture
def make_identity(nexus_service: NexusService, tmp_path: Path) -> Callable[..., Identity]:
    """make_identity(capabilities=(), **fields) -> the example's Identity with `fields` changed, its facts
    (offering `capabilities`) in a file of its own."""
    made = 0

    def make(capabilities: tuple[str, ...] = (), **fields: Any) -> Identity:
        nonlocal made
        made += 1
        facts = tmp_path / f"service-{made}.env"
        facts.write_text(FACTS.format(capabilities=", ".join(capabilities)))
        return dataclasses.replace(nexus_service.identity, facts_file=facts, **fields)

    return make


class Logs:
    """The JSON lines written to stdout (captured by capfd), read as they arrive: the platform writes them
    from a thread, so a line may come a moment after the response."""

    def __init__(self, capfd: pytest.CaptureFixture[str]) -> None:
        self.capfd = capfd
        self.lines: list[dict[str, Any]] = []
        self._partial = ""

    def read(self) -> list[dict[str, Any]]:
        # the writer threads wait while capfd reads: it reads its file, then truncates it, and a line
        # written in between would be lost (a start-up line was, in CI)
        with held_logs():
            text = self._partial + self.capfd.readouterr().out
        complete, _, self._partial = text.rpartition("\n")
        self.lines += [json.loads(line) for line in complete.splitlines() if line.startswith("{")]
        return self.lines

    def wait_for(
        self, found: Callable[[dict[str, Any]], bool], timeout: float = 10.0
    ) -> list[dict[str, Any]]:
        """Every line read once one matching `found` has arrived (all of a request's lines are written
        in order, its access line last)."""
        deadline = time.monotonic() + timeout
        while not any(found(line) for line in self.read()):
            assert time.monotonic() < deadline, f"no such log line within {timeout}s: {self.lines[-5:]}"
            time.sleep(0.02)
        return self.lines

    def access(self, request_id: str) -> dict[str, Any]:
        """The access line of the request `request_id`, once written."""
        lines = self.wait_for(
            lambda line: line.get("logger") == "nexus.access" and line.get("request_id") == request_id
        )
        [line] = [
            each
            for each in lines
            if each.get("logger") == "nexus.access" and each.get("request_id") == request_id
        ]
        return line


@pytest.fixture
def logs(capfd: pytest.CaptureFixture[str]) -> Logs:
    return Logs(capfd)
