"""Session-wide renders: one git copy of the template, one render per answer set and worker."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.render import copy_working_tree, load_answers, render
from devtools.wheel import build_wheel
from tests.etcd_server import ETCD, Etcd
from tests.histories import TemplateHistory, new_history, new_monorepo

PLATFORM_TESTS = Path(__file__).parent / "platform"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The library's tests carry the `platform` marker (the inner loop selects by it)."""
    for item in items:
        if PLATFORM_TESTS in item.path.parents:
            item.add_marker(pytest.mark.platform)


@pytest.fixture(scope="session", autouse=True)
def updater_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The updater's cache (resolutions, locks, --test environments) for this session only, shared by its
    workers: nothing from an earlier session, whose library code may differ under the same version."""
    session = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):  # each worker's folder is in the session's
        session = session.parent
    folder = session / "nexus-template-cache"
    folder.mkdir(exist_ok=True)
    previous = os.environ.get("NEXUS_TEMPLATE_CACHE")
    os.environ["NEXUS_TEMPLATE_CACHE"] = str(folder)
    yield folder
    if previous is None:
        os.environ.pop("NEXUS_TEMPLATE_CACHE", None)
    else:
        os.environ["NEXUS_TEMPLATE_CACHE"] = previous


@pytest.fixture(scope="session")
def template_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_working_tree(tmp_path_factory.mktemp("template"))


@pytest.fixture(scope="session")
def rendered(template_repo: Path, tmp_path_factory: pytest.TempPathFactory):
    """rendered(name) -> the service rendered from tests/answers/<name>.yml (cached per session)."""
    cache: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in cache:
            cache[name] = render(
                template_repo, tmp_path_factory.mktemp(f"svc-{name}") / name, load_answers(name)
            )
        return cache[name]

    return get


@pytest.fixture(scope="session", autouse=True)
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A folder with this checkout's nexus-ai-platform wheel, in PIP_FIND_LINKS for the whole session: no
    index has this release, so the suite runs as the docs tell a team in that situation to (pip, uv and
    the updater's resolve check all read it)."""
    folder = tmp_path_factory.mktemp("wheelhouse")
    build_wheel(folder)
    previous = os.environ.get("PIP_FIND_LINKS")
    os.environ["PIP_FIND_LINKS"] = " ".join(filter(None, [str(folder), previous]))
    yield folder
    if previous is None:
        os.environ.pop("PIP_FIND_LINKS", None)
    else:
        os.environ["PIP_FIND_LINKS"] = previous


@pytest.fixture
def history(tmp_path: Path) -> TemplateHistory:
    """A template repository released as v1.0.0 (tests/histories.py)."""
    return new_history(tmp_path / "template")


@pytest.fixture
def monorepo(tmp_path: Path) -> Path:
    """An empty platform monorepo in git; services go to services/<name>/."""
    return new_monorepo(tmp_path / "platform")


@pytest.fixture
def etcd(tmp_path: Path) -> Iterator[Etcd]:
    """A real etcd on loopback ports (tests/etcd_server.py), stopped by pid afterwards."""
    if ETCD is None:
        pytest.skip("no etcd binary: install Debian's etcd-server (.ci/run does)")
    server = Etcd(tmp_path / "etcd-data").start()
    yield server
    server.stop()
