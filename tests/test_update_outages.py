"""Update stories where the package index is down: an outage is said as such, never a clash, never cached.

A real local "index" stands in for the outage: a closed port on 127.0.0.1 (connections refused) or a
socket that accepts connections and never answers (every request times out). pip and uv are pointed
at it with PIP_INDEX_URL / UV_INDEX_URL, and read no configuration that names another index.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from devtools.render import git
from nexus_template.cli import main as cli
from tests.histories import TemplateHistory, answers, append_line, commit_all, generate, status

_INDEX_SETTINGS = ("PIP_FIND_LINKS", "PIP_EXTRA_INDEX_URL", "UV_DEFAULT_INDEX", "UV_INDEX", "UV_FIND_LINKS")


@pytest.fixture(autouse=True)
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each story starts without cached resolutions or locks, and leaves none behind for others."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("NEXUS_TEMPLATE_CACHE", str(cache))
    return cache


def update_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict]:
    """Run the CLI with --json; (exit code, the one service's report)."""
    code = cli([*args, "--json"])
    (result,) = json.loads(capsys.readouterr().out)["services"]
    return code, result


def release_without_requirement_changes(history: TemplateHistory) -> None:
    history.append("template/app/healthcheck.py.jinja", "\nIN_V1_1 = True\n")
    history.release("v1.1.0")


@contextmanager
def index_at(url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """pip and uv ask only `url` within the block."""
    with monkeypatch.context() as patch:
        patch.setenv("PIP_INDEX_URL", url)
        patch.setenv("UV_INDEX_URL", url)
        patch.setenv("PIP_CONFIG_FILE", os.devnull)  # no configured extra index or find-links
        patch.setenv("UV_NO_CONFIG", "1")
        for name in _INDEX_SETTINGS:
            patch.delenv(name, raising=False)
        yield


@contextmanager
def refusing_index(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """An index on a port where nothing listens: every connection is refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with index_at(f"http://127.0.0.1:{port}/simple", monkeypatch):
        yield


@contextmanager
def silent_index(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """An index that accepts connections (the kernel completes them) and never answers a request."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        with index_at(f"http://127.0.0.1:{listener.getsockname()[1]}/simple", monkeypatch):
            yield


def back_to_last_commit(monorepo: Path) -> None:
    git(monorepo, "reset", "--quiet", "--hard")
    git(monorepo, "clean", "-fdq")


def test_a_refused_index_is_an_outage_not_a_clash_and_is_not_remembered(
    history: TemplateHistory,
    monorepo: Path,
    own_cache: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    service = generate(history.path, monorepo, "greeter", "v1.0.0")
    lock = (service / "requirements.lock").read_text()
    release_without_requirement_changes(history)

    with refusing_index(monkeypatch):
        code, result = update_json(capsys, "update", str(service))

    assert (code, result["status"], result["after"]) == (1, "review", "v1.1.0")
    assert result["dependency_clashes"] == []
    (note,) = result["notes"]
    assert note.startswith(
        "requirements not checked and requirements.lock not refreshed: package index unreachable"
    )
    assert "Connection refused" in note
    assert (service / "requirements.lock").read_text() == lock
    assert "IN_V1_1 = True" in (service / "app/healthcheck.py").read_text()
    assert not (own_cache / "resolved").exists()
    assert not (own_cache / "locks").exists()

    # the index is back: the same update is checked for real, nothing remembered from the outage
    back_to_last_commit(monorepo)
    code, result = update_json(capsys, "update", str(service))

    assert (code, result["status"], result["notes"], result["dependency_clashes"]) == (0, "ok", [], []), (
        result
    )
    assert answers(service)["_commit"] == "v1.1.0"


@pytest.mark.parametrize("asked_by", ["pip", "uv"])
def test_an_index_that_never_answers_costs_seconds_and_is_reported(
    history: TemplateHistory,
    monorepo: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    asked_by: str,
) -> None:
    """pip asks first (the resolution check); with --no-resolve, uv asks (the lock refresh)."""
    service = generate(history.path, monorepo, "greeter", "v1.0.0")
    release_without_requirement_changes(history)
    monkeypatch.setenv("NEXUS_TEMPLATE_INDEX_TIMEOUT", "1")
    monkeypatch.delenv("PIP_DEFAULT_TIMEOUT", raising=False)  # the setting bounds pip whatever pip's own say

    with silent_index(monkeypatch):
        began = time.monotonic()
        code, result = update_json(
            capsys, "update", str(service), *(["--no-resolve"] if asked_by == "uv" else [])
        )
        took = time.monotonic() - began

    assert (code, result["status"], result["dependency_clashes"]) == (1, "review", [])
    (note,) = result["notes"]
    assert f"package index unreachable ({asked_by}: " in note
    assert ("Read timed out" if asked_by == "pip" else "operation timed out") in note
    assert took < 90, f"two tries of one second each, and the update itself: {took:.0f} s (was 131 s)"


def test_the_lock_refresh_is_cached_by_its_inputs_and_offline_takes_it_from_the_cache(
    history: TemplateHistory,
    monorepo: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    alpha = generate(history.path, monorepo, "alpha", "v1.0.0")
    beta = generate(history.path, monorepo, "beta", "v1.0.0")
    gamma = generate(history.path, monorepo, "gamma", "v1.0.0")
    append_line(gamma / "requirements-service.txt", "rich==13.9.4")  # inputs no other service locked
    commit_all(monorepo, "gamma pins rich")
    gamma_lock = (gamma / "requirements.lock").read_text()
    release_without_requirement_changes(history)
    code, result = update_json(capsys, "update", str(alpha), "--no-resolve")
    assert (code, result["status"]) == (0, "ok")
    commit_all(monorepo, "alpha at v1.1.0")

    with refusing_index(monkeypatch):
        # the lock of the same inputs was refreshed before: written from the cache, the index not asked
        code, result = update_json(capsys, "update", str(beta), "--no-resolve")
        assert (code, result["status"], result["notes"]) == (0, "ok", [])
        assert (beta / "requirements.lock").read_text() == (alpha / "requirements.lock").read_text()
        commit_all(monorepo, "beta at v1.1.0")

        # inputs never locked: without --offline uv meets the outage, with it the index is not asked
        code, result = update_json(capsys, "update", str(gamma), "--no-resolve")
        assert (code, result["status"], result["dependency_clashes"]) == (1, "review", [])
        (note,) = result["notes"]
        assert note.startswith("requirements.lock not refreshed: package index unreachable (uv: ")

        back_to_last_commit(monorepo)
        code, result = update_json(capsys, "update", str(gamma), "--offline")

    assert (code, result["status"], result["after"]) == (1, "review", "v1.1.0")
    (note,) = result["notes"]
    assert note.startswith(
        "requirements.lock not refreshed: --offline, and these requirements were never locked on this machine"
    )
    assert (gamma / "requirements.lock").read_text() == gamma_lock
    assert "IN_V1_1 = True" in (gamma / "app/healthcheck.py").read_text()
    assert [line for line in status(monorepo) if not line.startswith(" M services/gamma/")] == []


def test_no_resolve_catches_two_pins_of_one_package_in_one_file_without_the_index(
    history: TemplateHistory,
    monorepo: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    service = generate(history.path, monorepo, "greeter", "v1.0.0")
    append_line(service / "requirements-service.txt", "rich==13.9.4")
    append_line(service / "requirements-service.txt", "Rich==14.0.0  # added later, the first one forgotten")
    # one pin per Python: no clash (pip installs one of them)
    append_line(service / "requirements-service.txt", 'numpy==1.26.4 ; python_version < "3.12"')
    append_line(service / "requirements-service.txt", 'numpy==2.1.0 ; python_version >= "3.12"')
    commit_all(monorepo, "the service pins rich twice")
    release_without_requirement_changes(history)

    with refusing_index(monkeypatch):
        code, result = update_json(capsys, "update", str(service), "--no-resolve")

    assert (code, result["status"]) == (1, "failed")
    assert result["dependency_clashes"] == [
        "rich is pinned to 13.9.4 in requirements-service.txt and 14.0.0 in requirements-service.txt"
    ]
    assert result["notes"] == []


def test_tests_asked_for_during_an_outage_are_not_run_and_say_why(
    history: TemplateHistory,
    monorepo: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    service = generate(history.path, monorepo, "greeter", "v1.0.0")
    release_without_requirement_changes(history)

    with refusing_index(monkeypatch):
        code, result = update_json(capsys, "update", str(service), "--test", "--no-resolve")

    assert (code, result["status"], result["tests"], result["dependency_clashes"]) == (
        1,
        "failed",
        "failed",
        [],
    )
    assert result["tests_problem"].startswith("the tests were not run: package index unreachable (pip: ")
    (note,) = result["notes"]
    assert note.startswith("requirements.lock not refreshed: package index unreachable (uv: ")

    # --offline asks no index at all: no environment is built (none was, here), and that is said
    back_to_last_commit(monorepo)
    with refusing_index(monkeypatch):
        code, result = update_json(capsys, "update", str(service), "--test", "--offline")

    assert (code, result["status"]) == (1, "failed")
    assert result["tests_problem"] == (
        "the tests were not run: --offline, and no environment for these requirements was built here"
    )


@contextmanager
def index_answering(status_code: int, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """An index that answers every request with `status_code` (a wrong URL: 404; an expired login: 403)."""

    class Refusing(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # the name http.server calls
            self.send_error(status_code)

        def log_message(self, *args: object) -> None:
            del args  # quiet: pytest shows stderr of failures only

    server = ThreadingHTTPServer(("127.0.0.1", 0), Refusing)
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    try:
        with index_at(f"http://127.0.0.1:{server.server_address[1]}/simple", monkeypatch):
            yield
    finally:
        server.shutdown()
        server.server_close()
        serving.join(timeout=10)


@pytest.mark.parametrize("status_code", [403, 404])
def test_an_index_that_knows_no_package_is_not_remembered_for_another_index(
    history: TemplateHistory,
    monorepo: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    status_code: int,
) -> None:
    service = generate(history.path, monorepo, "greeter", "v1.0.0")
    release_without_requirement_changes(history)

    with index_answering(status_code, monkeypatch):
        code, result = update_json(capsys, "update", str(service), "--plan")

    assert (code, result["status"]) == (1, "failed")
    (clash,) = result["dependency_clashes"]
    assert clash.endswith("(the package index has no version of it at all: check the name and PIP_INDEX_URL)")
    assert not (Path(os.environ["NEXUS_TEMPLATE_CACHE"]) / "resolved").exists()  # own_cache's folder

    # another index (here one that is down) is asked afresh: no answer of the first one is reused
    with refusing_index(monkeypatch):
        code, result = update_json(capsys, "update", str(service), "--plan")

    assert (code, result["status"], result["dependency_clashes"]) == (1, "review", [])
    assert "package index unreachable" in result["notes"][0]
    assert status(monorepo) == []
