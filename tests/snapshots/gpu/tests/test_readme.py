# Managed by nexus-template: `copier update` replaces this file. Your tests belong in tests/test_service.py.
"""Every `app/service.py` example in README.md works as written: each one becomes the service of a copy
of this one (with the `.env.example` lines that follow it), which must lint clean and pass the contract
tests."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.nexus_fixtures import ROOT

EXAMPLE = "# app/service.py\n"
BLOCK = re.compile(r"^```(\w+)\n(.*?)^```", re.MULTILINE | re.DOTALL)
SERVICE_SETTINGS = re.compile(r"^# --- Service settings.*\n", re.MULTILINE)
COPIED = ("app", "tests", "release", "pyproject.toml", "ruff.toml", ".env.example", "README.md")


def readme_examples() -> list[tuple[str, str]]:
    """(app/service.py, the .env.example lines of its settings) for each example of README.md."""
    blocks = BLOCK.findall((ROOT / "README.md").read_text())
    examples = []
    for index, (language, body) in enumerate(blocks):
        if language == "python" and body.startswith(EXAMPLE):
            following = blocks[index + 1] if index + 1 < len(blocks) else ("", "")
            examples.append((body, following[1] if following[0] == "dotenv" else ""))
    return examples


def _title(example: tuple[str, str]) -> str:
    return example[0].splitlines()[1].strip('"').rstrip(".")


def _run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=600, check=False
    )


def test_the_readme_has_examples() -> None:
    assert len(readme_examples()) >= 3


@pytest.mark.parametrize("example", readme_examples(), ids=_title)
def test_a_readme_example_works_as_written(tmp_path: Path, example: tuple[str, str]) -> None:
    service_py, dotenv = example
    copy = tmp_path / "service"
    for name in COPIED:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, copy / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, copy / name)
    (copy / "app" / "service.py").write_text(service_py)
    (copy / "tests" / "test_service.py").unlink(missing_ok=True)  # about the example endpoint it replaces
    env = (copy / ".env.example").read_text()
    settings_line = SERVICE_SETTINGS.search(env)
    assert settings_line, ".env.example has no 'Service settings' line"
    (copy / ".env.example").write_text(env[: settings_line.end()] + dotenv)

    for lint in (
        ["check", "--no-cache", "app/service.py"],
        ["format", "--check", "--no-cache", "app/service.py"],
    ):
        result = _run(copy, "-m", "ruff", *lint)
        assert result.returncode == 0, result.stdout + result.stderr
    tests = _run(
        copy, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_contract.py",
        "-k", "not live_service and not stops_the_process",
    )  # fmt: skip
    assert tests.returncode == 0, tests.stdout[-4000:] + tests.stderr[-2000:]
