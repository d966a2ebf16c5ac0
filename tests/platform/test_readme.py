"""Every `app/service.py` example in a rendered service's README works as written: each one becomes the
service of a copy of the rendered service (with the `.env.example` lines that follow it, and the README's
service settings table as `python -m nexus_platform settings --app` writes it), which must lint clean and
pass the contract (nexus_platform.testing)."""

import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from nexus_platform._config.docs import SERVICE_README_END, SERVICE_README_START

pytestmark = pytest.mark.slow  # a rendered service's suite per example

EXAMPLE = "# app/service.py\n"
BLOCK = re.compile(r"^```(\w+)\n(.*?)^```", re.MULTILINE | re.DOTALL)
SERVICE_SETTINGS = re.compile(r"^# --- Service settings.*\n", re.MULTILINE)
README = Path(__file__).resolve().parents[2] / "template" / "README.md.jinja"


def readme_examples(readme: str) -> list[tuple[str, str]]:
    """(app/service.py, the .env.example lines of its settings) for each example of the README."""
    blocks = BLOCK.findall(readme)
    examples = []
    for index, (language, body) in enumerate(blocks):
        if language == "python" and body.startswith(EXAMPLE):
            following = blocks[index + 1] if index + 1 < len(blocks) else ("", "")
            examples.append((body, following[1] if following[0] == "dotenv" else ""))
    return examples


def _run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=600, check=False
    )


def test_the_readme_has_examples(rendered: Callable[[str], Path]) -> None:
    assert len(readme_examples((rendered("default") / "README.md").read_text())) >= 3


# the examples of the template's README, numbered in order (each test reads its own from a render)
@pytest.mark.parametrize("number", range(len(readme_examples(README.read_text()))))
def test_a_readme_example_works_as_written(
    rendered: Callable[[str], Path], tmp_path: Path, number: int
) -> None:
    service = rendered("default")
    service_py, dotenv = readme_examples((service / "README.md").read_text())[number]
    copy = tmp_path / "service"
    shutil.copytree(service, copy, ignore=shutil.ignore_patterns("__pycache__", ".git"))
    (copy / "app" / "service.py").write_text(service_py)
    (copy / "tests" / "test_service.py").unlink()  # about the example endpoint it replaces
    env = (copy / ".env.example").read_text()
    settings_line = SERVICE_SETTINGS.search(env)
    assert settings_line, ".env.example has no 'Service settings' line"
    (copy / ".env.example").write_text(env[: settings_line.end()] + dotenv)
    tables = _run(copy, "-m", "nexus_platform", "settings", "--app", "--format", "markdown")
    assert tables.returncode == 0, tables.stderr
    own = tables.stdout.split("\n\n")[-1]  # the second table: the service's own settings
    readme = (copy / "README.md").read_text()
    before, rest = readme.split(SERVICE_README_START + "\n")
    after = rest[rest.index(SERVICE_README_END) :]
    (copy / "README.md").write_text(f"{before}{SERVICE_README_START}\n\n{own}\n{after}")

    for lint in (
        ["check", "--no-cache", "app/service.py"],
        ["format", "--check", "--no-cache", "app/service.py"],
    ):
        result = _run(copy, "-m", "ruff", *lint)
        assert result.returncode == 0, result.stdout + result.stderr
    tests = _run(copy, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_contract.py")
    assert tests.returncode == 0, tests.stdout[-4000:] + tests.stderr[-2000:]
