"""Render every answer set, lint the output, run its own tests, boot it and talk to it over HTTP."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from fnmatch import fnmatchcase

import httpx
import nexus_platform
import pytest
import yaml

from devtools.live import wait_for_health
from devtools.render import PYTHON, ROOT, answer_sets, load_answers, run_python

TEMPLATE_OWNED_PYTHON = "# Managed by nexus-template: `copier update` replaces this file."
ALWAYS = [
    ".copier-answers.yml",
    ".dockerignore",
    ".env.example",
    ".gitignore",
    "Dockerfile",
    "README.md",
    "app/__init__.py",
    "app/__main__.py",
    "app/healthcheck.py",
    "app/main.py",
    "app/service.py",
    "pyproject.toml",
    "requirements.txt",
    "requirements-dev.txt",
    "requirements-service.txt",
    "requirements.lock",
    "release/service.env",
    "tests/conftest.py",
    "tests/test_contract.py",
    "tests/test_service.py",
]
# The platform is the nexus-ai-platform library: no implementation of it is rendered into a service.
PLATFORM_MODULES = ["app/nexus", "tests/nexus_fixtures.py"]
# the service-owned files: created once, never touched by updates (copier.yml is the one list)
SERVICE_OWNED = yaml.safe_load((ROOT / "copier.yml").read_text())["_skip_if_exists"]

# the default service is the inner loop's render (make check)
pytestmark = pytest.mark.parametrize(
    "name",
    [pytest.param(name, marks=[pytest.mark.check] if name == "default" else []) for name in answer_sets()],
)


def test_files_present_and_absent(rendered, name: str) -> None:
    service = rendered(name)
    answers = load_answers(name)
    expected = [*ALWAYS, f"docker-compose.{answers['service_name']}.yml"]
    missing = [path for path in expected if not (service / path).is_file()]
    assert not missing
    assert not [path for path in PLATFORM_MODULES if (service / path).exists()]
    pin = f"nexus-ai-platform{'[gpu]' if answers.get('gpu') else ''}=={nexus_platform.__version__}"
    assert pin in (service / "requirements.txt").read_text().splitlines()
    leftovers = [str(path) for path in service.rglob("*") if path.suffix == ".jinja" or "{{" in path.name]
    assert not leftovers


def test_template_owned_python_says_so_in_its_first_line(rendered, name: str) -> None:
    service = rendered(name)
    for path in service.rglob("*.py"):
        relative = str(path.relative_to(service))
        first = path.read_text().splitlines()[0] if path.stat().st_size else ""
        if any(fnmatchcase(relative, pattern) for pattern in SERVICE_OWNED):
            assert not first.startswith("# Managed by nexus-template"), relative
        else:
            assert first.startswith(TEMPLATE_OWNED_PYTHON), relative


def test_ruff_is_clean(rendered, name: str) -> None:
    service = rendered(name)
    for command in (["check", "--no-cache", "."], ["format", "--check", "--no-cache", "."]):
        result = run_python(service, "-m", "ruff", *command)
        assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture(scope="session")
def mypy_cache(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One mypy cache per worker: the libraries' analysis (Litestar, msgspec, nexus-ai-platform) is done
    once, and each service's own modules are checked again (mypy compares their hashes)."""
    return str(tmp_path_factory.mktemp("mypy-cache"))


def test_mypy_is_clean(rendered, name: str, mypy_cache: str) -> None:
    """The service's own type check (pyproject.toml [tool.mypy], as its CI runs it).
    Without this repository on PYTHONPATH: mypy would take its `tests` package for the service's."""
    result = run_python(rendered(name), "-m", "mypy", "--cache-dir", mypy_cache, timeout=300, PYTHONPATH="")
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert result.stdout.startswith("Success: no issues found"), result.stdout


def test_the_services_own_tests_pass(rendered, name: str) -> None:
    result = run_python(rendered(name), "-m", "pytest", "-q", "-p", "no:cacheprovider", timeout=600)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    # pytest's summary ("N passed, M skipped in …"); the service's own log lines may follow it
    [summary] = [line for line in result.stdout.splitlines() if re.match(r"^\d+ passed", line)][-1:]
    assert " passed" in summary
    assert " failed" not in summary
    assert " error" not in summary


def test_live_boot_on_the_chosen_port(rendered, name: str) -> None:
    """uvicorn on the answer's port (the development command); the production entrypoint is tested
    by the service's own suite."""
    service = rendered(name)
    port = load_answers(name).get("port", 9000)
    process = subprocess.Popen(
        [
            PYTHON,
            "-m",
            "uvicorn",
            "app.main:create_app",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        cwd=service,
        env={**os.environ, "GPU_MIN_COUNT": "0"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        health = wait_for_health(
            f"{base}/health",
            died=lambda: process.poll() is not None,
            details=lambda: process.stdout.read().decode() if process.stdout else "",
        )
        assert health.json() == {"status": "pass"}
        ready = httpx.get(f"{base}/readyz")
        if load_answers(name).get("backend") == "openai":  # a wrapper is not ready without its backend
            assert ready.status_code == 503
            assert ready.json()["checks"]["backend:responseTime"][0]["output"] == "BACKEND_URL is not set"
        else:
            assert ready.status_code == 200
        assert ready.headers["content-type"].startswith("application/health+json")
        metadata = httpx.get(f"{base}/v1/metadata").json()
        answers = load_answers(name)
        assert metadata["name"] == answers["service_name"]
        assert metadata["gpu"] is bool(answers.get("gpu"))
        if "capabilities" in answers:
            assert metadata["capabilities"] == answers["capabilities"]
        listed = {(endpoint["path"], endpoint["method"]) for endpoint in metadata["endpoints"]}
        # a service's example endpoint; a gateway's routing table
        own = ("/v1/gateway/instances", "GET") if answers.get("role") == "gateway" else ("/v1/echo", "POST")
        assert {("/health", "GET"), ("/readyz", "GET"), ("/v1/metadata", "GET"), own} <= listed
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


def test_defaults_follow_the_answers(rendered, name: str) -> None:
    service = rendered(name)
    answers = load_answers(name)
    dockerfile = (service / "Dockerfile").read_text()
    port = answers.get("port", 9000)
    assert f"EXPOSE {port}\n" in dockerfile
    assert f"SERVICE_PORT={port}\n" in (service / ".env.example").read_text()
    if "base_image" in answers:
        assert f"ARG BASE_IMAGE={answers['base_image']}\n" in dockerfile
    elif answers.get("gpu"):
        assert "ARG BASE_IMAGE=nvidia/cuda:" in dockerfile
        assert f"ARG PYTHON_VERSION={answers['python_version']}\n" in dockerfile
    else:
        assert f"ARG BASE_IMAGE=python:{answers.get('python_version', '3.11')}-slim\n" in dockerfile
