"""The nexus-ai-platform wheel: reproducible, installable alone, and the one the template's lock names."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import nexus_platform
import pytest

from devtools.render import ROOT
from devtools.wheel import build_wheel, sha256

pytestmark = pytest.mark.check


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_wheel(tmp_path_factory.mktemp("wheel"))


def test_the_same_commit_builds_the_same_bytes(wheel: Path, tmp_path: Path) -> None:
    again = build_wheel(tmp_path)
    assert again.name == wheel.name == f"nexus_ai_platform-{nexus_platform.__version__}-py3-none-any.whl"
    assert sha256(again) == sha256(wheel)


def test_the_template_lock_carries_the_hash_of_this_wheel(wheel: Path) -> None:
    lock = (ROOT / "template" / "requirements.lock.jinja").read_text()
    entry = re.search(r"^nexus-ai-platform==(\S+) \\\n((?:    --hash=sha256:\w+.*\n?)+)", lock, re.MULTILINE)
    assert entry, "template/requirements.lock.jinja has no nexus-ai-platform entry: run `make lock`"
    assert entry.group(1) == nexus_platform.__version__
    assert re.findall(r"sha256:(\w+)", entry.group(2)) == [sha256(wheel)], (
        "the platform changed since the template's lock was written: run `make lock`"
    )


@pytest.mark.slow
def test_the_wheel_installs_into_a_clean_environment_with_its_declared_dependencies(
    wheel: Path, tmp_path: Path
) -> None:
    """pip resolves only what the wheel declares (from the index); the library imports and answers."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    install = subprocess.run(
        [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", str(wheel)],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert install.returncode == 0, install.stderr[-3000:]
    script = (
        "import nexus_platform, nexus_platform.openai, sys;"
        "print(nexus_platform.__version__, 'pytest' in sys.modules)"
    )
    result = subprocess.run([python, "-c", script], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    # pytest is the testing extra's: importing the library does not need it
    assert result.stdout.split() == [nexus_platform.__version__, "False"]
