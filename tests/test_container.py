"""Build the default service's image with a real engine as CI does (its image/build-like-ci.sh: tag and
labels from release/service.env), run it, health-check it, stop it.

The engine comes from CONTAINER_ENGINE (docker or podman), else whichever answers. `.ci/run` sets up
podman and a local python:3.11-slim stand-in (../shared/tools/oci-sandbox); without an engine the test
is skipped and says so. The GPU variant cannot be built here (no CUDA base image): hadolint and the
structure tests in test_deploy.py cover it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

from devtools.live import free_port, wait_for_health
from devtools.render import load_answers, render
from devtools.wheel import add_to_image_context

pytestmark = pytest.mark.xdist_group("container")


def engine() -> str | None:
    candidates = (
        [os.environ["CONTAINER_ENGINE"]] if os.environ.get("CONTAINER_ENGINE") else ["podman", "docker"]
    )
    for candidate in candidates:
        if (
            shutil.which(candidate)
            and subprocess.run([candidate, "info"], capture_output=True, check=False).returncode == 0
        ):
            return candidate
    return None


def run(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, check=False)


# a description a shell and the platform must read alike: quotes, $, a backslash, backquotes
DESCRIPTION = 'Says "hi" for $5 \\ `now`'
LABELS = [f"org.opencontainers.image.{name}" for name in ("description", "version", "revision", "vendor")]


def describe(service: Path, description: str) -> None:
    """Set SERVICE_DESCRIPTION in the service's release/service.env, quoted as the template quotes it."""
    facts = service / "release" / "service.env"
    line = 'SERVICE_DESCRIPTION="' + re.sub(r'(["$`\\])', r"\\\1", description) + '"'
    facts.write_text(re.sub(r"(?m)^SERVICE_DESCRIPTION=.*$", lambda _: line, facts.read_text()))


def build_like_ci(tool: str, service: Path, tag: str, *, timeout: float) -> subprocess.CompletedProcess[str]:
    """The service's image/build-like-ci.sh with `tool`, as CI runs it (this environment's Python reads
    release/service.env)."""
    return subprocess.run(
        [str(service / "image" / "build-like-ci.sh"), "--network", "host", "--tag", tag],
        env={**os.environ, "CONTAINER_ENGINE": tool, "PYTHON": sys.executable, "GIT_SHA": "0123abc"},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def stop_with_sigterm(tool: str, name: str) -> dict[str, float | int]:
    started = time.monotonic()
    assert run(tool, "kill", "--signal", "TERM", name).returncode == 0
    waited = run(tool, "wait", name, timeout=60)
    return {
        "shutdown_seconds": round(time.monotonic() - started, 2),
        "exit_code": int(waited.stdout.strip().splitlines()[-1]),
    }


def test_image_builds_runs_is_healthy_non_root_and_stops_cleanly(rendered, tmp_path: Path) -> None:
    tool = engine()
    if tool is None:
        pytest.skip(
            "no container engine: set CONTAINER_ENGINE or run ../shared/tools/oci-sandbox env (see .ci/run)"
        )
    if run(tool, "image", "exists", "python:3.11-slim").returncode != 0 and tool == "podman":
        pytest.skip(
            "base image python:3.11-slim is not available locally (oci-sandbox base python:3.11-slim)"
        )
    service = shutil.copytree(rendered("default"), tmp_path / "service")
    add_to_image_context(service)  # no index has this checkout's nexus-ai-platform
    describe(service, DESCRIPTION)
    tag = f"localhost/nexus-test-{uuid.uuid4().hex[:8]}:latest"
    released = "nexus/echo-service:0.1.0"  # the script's tag: image name and SERVICE_VERSION
    name = f"nexus-test-{uuid.uuid4().hex[:8]}"
    port = free_port()
    report: dict[str, object] = {"engine": tool}

    started = time.monotonic()
    build = build_like_ci(tool, service, tag, timeout=600)
    report["build_seconds"] = round(time.monotonic() - started, 1)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    try:
        labels = json.loads(run(tool, "image", "inspect", released, "--format", "{{json .Labels}}").stdout)
        assert {name.removeprefix("org.opencontainers.image."): labels[name] for name in LABELS} == {
            "description": DESCRIPTION,
            "version": "0.1.0",
            "revision": "0123abc",
            "vendor": "Nexus (nexus-platform)",
        }
        report["image_bytes"] = int(
            run(tool, "image", "inspect", tag, "--format", "{{.Size}}").stdout.strip()
        )
        container = run(
            tool, "run", "-d", "--network", "host", "--name", name,
            "-e", f"SERVICE_PORT={port}", "-e", "SERVICE_HOST=127.0.0.1", "-e", "DRAIN_SECONDS=1", tag,
        )  # fmt: skip
        assert container.returncode == 0, container.stderr
        health = wait_for_health(
            f"http://127.0.0.1:{port}/health",
            details=lambda: run(tool, "logs", name).stdout,
            timeout=60,
            interval=0.2,
        )
        assert health.json() == {"status": "pass"}
        metadata = httpx.get(f"http://127.0.0.1:{port}/v1/metadata").json()
        assert metadata["build"]["git_sha"] == "0123abc"

        check = run(tool, "healthcheck", "run", name) if tool == "podman" else None
        if check is not None:
            report["healthcheck"] = check.stdout.strip() or "healthy"
            assert check.returncode == 0, check.stdout + check.stderr
        uid = run(
            tool, "exec", name, "python", "-c", "import os; print(os.getuid(), os.getgid())"
        ).stdout.split()
        report["uid"] = uid
        assert uid == ["10001", "10001"]
        writable = run(
            tool, "exec", name, "python", "-c", "import os; print(os.access('/srv/app/main.py', os.W_OK))"
        )
        assert writable.stdout.strip() == "False"

        stopped = stop_with_sigterm(tool, name)
        report.update(stopped)
        assert stopped["exit_code"] == 0, run(tool, "logs", name).stdout[-3000:]
        assert stopped["shutdown_seconds"] < 10
        logs = run(tool, "logs", name).stdout
        assert "draining" in logs
        assert '"service stopped"' in logs
    finally:
        print("container check:", json.dumps(report))
        run(tool, "rm", "-f", name)
        run(tool, "rmi", "-f", tag, released)


def test_a_gpu_image_on_a_base_with_the_answered_python_downloads_no_python(
    template_repo: Path, tmp_path: Path
) -> None:
    """The GPU Dockerfile uses the base's python3 when it is the answered version: built here, where no
    python-build-standalone download is reachable (only the package index), on the local Debian base whose
    python3 is 3.11 standing in for the CUDA image (whose apt Python is 3.12)."""
    tool = engine()
    if tool is None or (
        tool == "podman" and run(tool, "image", "exists", "python:3.11-slim").returncode != 0
    ):
        pytest.skip("needs a container engine and the local python:3.11-slim (oci-sandbox, see .ci/run)")
    answers = {**load_answers("gpu"), "python_version": "3.11", "base_image": "python:3.11-slim"}
    service = render(template_repo, tmp_path / "gpu-service", answers)
    add_to_image_context(service)
    tag = f"localhost/nexus-gpu-test-{uuid.uuid4().hex[:8]}:latest"
    build = build_like_ci(tool, service, tag, timeout=900)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    try:
        checked = run(
            tool, "run", "--rm", "--network", "host", "--entrypoint", "python", tag, "-c",
            "import sys, os, nexus_platform; print('%d.%d' % sys.version_info[:2], os.listdir('/opt/python'))",
        )  # fmt: skip
        assert checked.returncode == 0, checked.stderr[-2000:]
        assert checked.stdout.split() == ["3.11", "[]"]  # the base's Python; no standalone build copied
    finally:
        run(tool, "rmi", "--force", tag, "nexus/image-generator:0.1.0")
