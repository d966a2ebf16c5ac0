"""Lock files: complete, current, and refreshed by one command (uv against PyPI; the image build in
tests/test_container.py installs a service's lock with --require-hashes, which fails on a missing entry)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from devtools.render import ROOT, run_python
from tests.locks import DEV_LOCK, dev_lock_command

pytestmark = pytest.mark.xdist_group("uv")  # one uv cache


@pytest.mark.parametrize("name", ["default", "gpu"])
def test_a_new_service_starts_with_the_lock_uv_resolves(
    rendered, tmp_path: Path, name: str, wheelhouse: Path
) -> None:
    service = shutil.copytree(rendered(name), tmp_path / name)
    shipped = (service / "requirements.lock").read_text()
    result = run_python(service, "-m", "nexus_platform", "lock", PIP_FIND_LINKS=str(wheelhouse))
    assert result.returncode == 0, result.stderr
    assert (service / "requirements.lock").read_text() == shipped, "refresh the template's lock: make lock"


def test_a_service_dependency_fails_the_check_until_locked(
    rendered, tmp_path: Path, wheelhouse: Path
) -> None:
    service = shutil.copytree(rendered("default"), tmp_path / "service")
    before = (service / "requirements.lock").read_text()
    extra = service / "requirements-service.txt"
    extra.write_text(extra.read_text() + "python-dateutil==2.9.0.post0\n")

    check = run_python(service, "-m", "nexus_platform", "lock", "--check")
    assert check.returncode == 1
    assert (
        "python-dateutil==2.9.0.post0 is pinned in the requirement files but missing from requirements.lock"
        in check.stderr
    )
    tests = run_python(
        service, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_contract.py", "-k", "lock"
    )
    assert tests.returncode == 1, tests.stdout  # the service's contract tests say so too
    assert "python-dateutil" in tests.stdout

    assert run_python(service, "-m", "nexus_platform", "lock", PIP_FIND_LINKS=str(wheelhouse)).returncode == 0
    after = (service / "requirements.lock").read_text()
    assert "\npython-dateutil==2.9.0.post0 \\\n    --hash=sha256:" in after
    assert "\nsix==" in after  # its own dependencies come along
    kept = [line for line in before.splitlines() if line.startswith("litestar==")]
    assert kept
    assert kept[0] in after.splitlines()  # versions already locked stay where they are
    assert run_python(service, "-m", "nexus_platform", "lock", "--check").returncode == 0


def test_the_maintainers_lock_is_current(tmp_path: Path) -> None:
    copy = tmp_path / DEV_LOCK.name
    shutil.copy(DEV_LOCK, copy)
    subprocess.run(dev_lock_command(copy), cwd=ROOT, check=True)
    assert copy.read_text() == DEV_LOCK.read_text(), "pyproject.toml changed: refresh with `make lock`"
