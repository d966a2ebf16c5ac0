"""The plugin's fixtures: the service under test, in-process clients of its app, and the real process."""

import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from litestar.testing import TestClient

from nexus_platform._identity import Identity
from nexus_platform._spec import ServiceSpec
from nexus_platform.testing._contract import ContractTests, offered_capabilities
from nexus_platform.testing._service import Client, LiveService, NexusService, load_service

__all__ = [
    "client",
    "live_service",
    "make_client",
    "nexus_service",
    "pytest_addoption",
    "pytest_generate_tests",
]

MakeClient = Callable[..., Client]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        "nexus_main",
        "the module defining the service under test (`service` and `IDENTITY`)",
        default="app.main",
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """The contract's capability tests, once per capability the service offers (and not at all for a
    service that offers none)."""
    cls = metafunc.cls
    if "capability" in metafunc.fixturenames and cls is not None and issubclass(cls, ContractTests):
        # none offered: pytest reports the test skipped, "got empty parameter set"
        metafunc.parametrize(
            "capability", offered_capabilities(load_service(str(metafunc.config.getini("nexus_main"))))
        )


@pytest.fixture(scope="session")
def nexus_service(pytestconfig: pytest.Config) -> NexusService:
    """The service under test, from its app/main.py (the `nexus_main` ini option names another module)."""
    return load_service(str(pytestconfig.getini("nexus_main")))


@pytest.fixture
def make_client(nexus_service: NexusService) -> Iterator[MakeClient]:
    """make_client(spec=None, identity=None, **environment) -> a started TestClient of a freshly built
    app: the service's spec and identity unless given, quiet logs, then `environment`."""
    clients: list[Client] = []

    def make(spec: ServiceSpec | None = None, identity: Identity | None = None, **environment: str) -> Client:
        service = nexus_service if identity is None else dataclasses.replace(nexus_service, identity=identity)
        client = TestClient(service.create_app(spec, environment))
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: MakeClient) -> Client:
    """A started TestClient of the service's app."""
    return make_client()


@pytest.fixture
def live_service(nexus_service: NexusService, tmp_path: Path) -> Iterator[Callable[..., LiveService]]:
    """live_service(**environment) -> the service running as `python -m app`, healthy; stopped (by its
    pid) after the test."""
    started: list[LiveService] = []

    def start(**environment: str) -> LiveService:
        live = LiveService(nexus_service, tmp_path, {"DRAIN_SECONDS": "0", **environment})
        started.append(live)
        live.wait_healthy()
        return live

    yield start
    for live in started:
        live.stop()
