"""Every command in docs/updating.md, run.

Each ```bash block there is announced by `<!-- run: SCENARIO -->` (and `, exit: N` when it must fail).
A scenario is a monorepo in a known state; its blocks run in document order with bash, from the
monorepo's root, with `nexus-template` and `copier` on PATH; then the test checks what they did.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from devtools.render import GIT_IDENTITY, ROOT
from tests.edits import PLATFORM_DOCSTRING, edit_file
from tests.histories import TemplateHistory, answers, append_line, commit_all, generate, status

DOC = ROOT / "docs" / "updating.md"
BLOCK = re.compile(r"(?:<!-- run: ([\w-]+)(?:, exit: (\d+))? -->\n)?```bash\n(.*?)```", re.DOTALL)


def documented_blocks() -> list[tuple[str | None, int, str]]:
    """(scenario, expected exit status, script) of each bash block, in document order."""
    return [(scenario, int(code or 0), script) for scenario, code, script in BLOCK.findall(DOC.read_text())]


def test_every_bash_block_is_run_by_a_scenario() -> None:
    blocks = documented_blocks()
    assert blocks, "docs/updating.md has no bash block"
    assert [script for scenario, _, script in blocks if scenario not in SCENARIOS] == []


def _conflicted(history: TemplateHistory, service: Path, monorepo: Path) -> None:
    checks = service / "app/__main__.py"
    edit_file(checks, (PLATFORM_DOCSTRING, '"""Entrypoint, tuned for our backend."""'))
    commit_all(monorepo, "my-service edits a template-owned line")
    history.replace(
        "template/app/__main__.py", PLATFORM_DOCSTRING, '"""Production entrypoint (changed in v1.1.0)."""'
    )
    history.release("v1.1.0")


def _release(history: TemplateHistory) -> None:
    history.append("template/app/healthcheck.py.jinja", "\nIN_V1_1 = True\n")
    history.release("v1.1.0")


def _run_blocks(scenario: str, monorepo: Path) -> None:
    env = {
        **os.environ,
        **GIT_IDENTITY,
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "PYTHONPATH": str(ROOT),
    }
    for name, code, script in documented_blocks():
        if name != scenario:
            continue
        result = subprocess.run(
            ["bash", "-eo", "pipefail", "-c", script],
            cwd=monorepo,
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=900,
        )
        assert result.returncode == code, f"{script}\n{result.stdout}\n{result.stderr}"


def _service(history: TemplateHistory, monorepo: Path) -> Path:
    service = generate(history.path, monorepo, "my-service", "v1.0.0")
    append_line(service / "app/service.py", "# the team's own code")
    commit_all(monorepo, "my-service edits")
    return service


def scenario_one(history: TemplateHistory, monorepo: Path) -> None:
    service = _service(history, monorepo)
    _release(history)
    _run_blocks("one", monorepo)
    assert answers(service)["_commit"] == "v1.1.0"
    assert status(monorepo) == []


def scenario_answers(history: TemplateHistory, monorepo: Path) -> None:
    service = _service(history, monorepo)
    _run_blocks("answers", monorepo)
    assert answers(service)["gpu"] is True
    assert "ARG BASE_IMAGE=nvidia/cuda:" in (service / "Dockerfile").read_text()
    assert status(monorepo) == []


def scenario_fleet(history: TemplateHistory, monorepo: Path) -> None:
    services = [generate(history.path, monorepo, name, "v1.0.0") for name in ("alpha", "beta")]
    _release(history)
    _run_blocks("fleet", monorepo)
    assert [answers(service)["_commit"] for service in services] == ["v1.1.0", "v1.1.0"]
    report = json.loads((monorepo / "update-report.json").read_text())
    assert [(result["service"], result["detail"]) for result in report["services"]] == [
        ("alpha", "up to date"),
        ("beta", "up to date"),
    ]


def scenario_conflict(history: TemplateHistory, monorepo: Path) -> None:
    service = _service(history, monorepo)
    _conflicted(history, service, monorepo)
    _run_blocks("conflict", monorepo)
    assert status(monorepo) == []
    assert answers(service)["_commit"] == "v1.0.0"


def scenario_conflict_git(history: TemplateHistory, monorepo: Path) -> None:
    service = _service(history, monorepo)
    _conflicted(history, service, monorepo)
    subprocess.run(
        [sys.executable, "-m", "nexus_template.cli", "update", str(service)],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        check=False,
    )
    assert status(monorepo), "the update was expected to leave a conflict"
    _run_blocks("conflict-git", monorepo)
    assert status(monorepo) == []


def scenario_copier(history: TemplateHistory, monorepo: Path) -> None:
    service = _service(history, monorepo)
    _release(history)
    _run_blocks("copier", monorepo)
    assert answers(service)["_commit"] == "v1.1.0"


SCENARIOS = {
    "one": scenario_one,
    "answers": scenario_answers,
    "fleet": scenario_fleet,
    "conflict": scenario_conflict,
    "conflict-git": scenario_conflict_git,
    "copier": scenario_copier,
}


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_the_documented_commands_do_what_the_page_says(
    scenario: str, history: TemplateHistory, monorepo: Path
) -> None:
    SCENARIOS[scenario](history, monorepo)
