"""The generated `template-update` workflow, run step by step on this machine.

Its `run:` steps are taken from the rendered YAML and run with bash in a service repository whose
`origin` is a bare repository; the hosting CLI (`gh`) is a recorder script on PATH, and `${{ ... }}`
expressions are filled from the steps' `$GITHUB_OUTPUT` files, the way Actions does.
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from devtools.render import GIT_IDENTITY, git, render
from tests.edits import PLATFORM_DOCSTRING, edit_file
from tests.histories import TemplateHistory

WORKFLOW = ".github/workflows/template-update.yml"
# each call: its arguments, NUL-terminated, then a record separator (arguments may hold newlines)
RECORDER = """#!/bin/sh
printf '%s\\0' "$@" >> "$GH_LOG"
printf '\\036' >> "$GH_LOG"
"""


def _expression(text: str, outputs: dict[str, dict[str, str]]) -> str:
    def value(match: re.Match[str]) -> str:
        words = match.group(1).split(".")
        if words[0] == "steps":
            return outputs.get(words[1], {}).get(words[3], "")
        assert words == ["github", "token"], match.group(0)
        return "recorded-token"

    return re.sub(r"\$\{\{\s*([\w.]+)\s*\}\}", value, text)


def _condition(text: str | None, outputs: dict[str, dict[str, str]]) -> bool:
    if text is None:
        return True
    match = re.fullmatch(r"steps\.(\w+)\.outputs\.(\w+) == '([^']*)'", text.strip())
    assert match, f"the test understands only `steps.X.outputs.Y == '...'`, not {text!r}"
    return outputs.get(match.group(1), {}).get(match.group(2)) == match.group(3)


def run_workflow(repo: Path, tmp_path: Path) -> tuple[list[tuple[str, int]], list[list[str]]]:
    """Run the workflow's steps in `repo`; ([(step, exit code)], [gh calls])."""
    (job,) = yaml.safe_load((repo / WORKFLOW).read_text())["jobs"].values()
    tools = tmp_path / "tools"
    tools.mkdir()
    (tools / "gh").write_text(RECORDER)
    (tools / "gh").chmod(stat.S_IRWXU)
    log = tmp_path / "gh.log"
    log.touch()
    outputs: dict[str, dict[str, str]] = {}
    ran = []
    for index, step in enumerate(job["steps"]):
        if "run" not in step or not _condition(step.get("if"), outputs):
            continue
        if step["run"].startswith("pip install"):
            continue  # copier is installed here already
        output = tmp_path / f"output-{index}"
        output.touch()
        env = {
            **os.environ,
            **GIT_IDENTITY,
            **{name: _expression(str(value), outputs) for name, value in step.get("env", {}).items()},
            "PATH": f"{tools}:{Path(sys.executable).parent}:{os.environ['PATH']}",
            "GITHUB_OUTPUT": str(output),
            "GH_LOG": str(log),
        }
        script = _expression(step["run"], outputs)
        result = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
            cwd=repo,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        ran.append((step.get("name", step["run"].splitlines()[0]), result.returncode))
        if "id" in step:
            lines = output.read_text().splitlines()
            outputs[step["id"]] = dict(line.split("=", 1) for line in lines if "=" in line)
        if result.returncode != 0:
            print(result.stdout, result.stderr)
            break
    calls = [record.split("\0")[:-1] for record in log.read_text().split("\x1e") if record]
    return ran, calls


@pytest.fixture
def service_repo(history: TemplateHistory, tmp_path: Path) -> tuple[Path, Path]:
    """(a service repository at v1.0.0 with a conflicting edit, its bare `origin`)."""
    service = render(history.path, tmp_path / "greeter", {"service_name": "greeter"}, vcs_ref="v1.0.0")
    git(service, "init", "--quiet", "--initial-branch=main")
    checks = service / "app/__main__.py"
    edit_file(checks, (PLATFORM_DOCSTRING, '"""Entrypoint, tuned for our backend."""'))
    git(service, "add", "--all")
    git(service, "commit", "--quiet", "--message", "greeter with an edit in a template-owned file")
    remote = tmp_path / "origin.git"
    git(tmp_path, "init", "--quiet", "--bare", str(remote))
    git(service, "remote", "add", "origin", str(remote))
    git(service, "push", "--quiet", "origin", "main")
    return service, remote


def test_a_conflicted_update_becomes_a_pull_request_that_lists_the_conflict(
    history: TemplateHistory, service_repo: tuple[Path, Path], tmp_path: Path
) -> None:
    service, remote = service_repo
    history.replace(
        "template/app/__main__.py", PLATFORM_DOCSTRING, '"""Production entrypoint (changed in v1.1.0)."""'
    )
    history.release("v1.1.0")

    ran, calls = run_workflow(service, tmp_path)

    # every step ran; the last one fails the job because a conflict is left
    assert [code for _, code in ran] == [0, 0, 1], ran
    (create,) = [call for call in calls if call[:2] == ["pr", "create"]]
    assert create[create.index("--head") + 1] == "template-update/v1.1.0"
    body = create[create.index("--body") + 1]
    assert "- `app/__main__.py`" in body
    # the conflicted update is on the pushed branch, markers and all
    pushed = git(remote, "show", "template-update/v1.1.0:app/__main__.py").stdout
    assert "<<<<<<< before updating" in pushed
    assert "tuned for our backend" in pushed
    assert "_commit: v1.1.0" in git(remote, "show", "template-update/v1.1.0:.copier-answers.yml").stdout
    assert git(remote, "rev-parse", "main").stdout == git(service, "rev-parse", "main").stdout


def test_a_clean_update_opens_a_pull_request_and_passes(
    history: TemplateHistory, service_repo: tuple[Path, Path], tmp_path: Path
) -> None:
    service, remote = service_repo
    history.append("template/app/healthcheck.py.jinja", "\nIN_V2 = True\n")
    history.release("v1.1.0")

    ran, calls = run_workflow(service, tmp_path)

    assert [code for _, code in ran] == [0, 0, 0], ran
    (create,) = calls
    assert "Conflicts" not in create[create.index("--body") + 1]
    assert "IN_V2 = True" in git(remote, "show", "template-update/v1.1.0:app/healthcheck.py").stdout


def test_no_release_no_branch(service_repo: tuple[Path, Path], tmp_path: Path) -> None:
    service, remote = service_repo

    ran, calls = run_workflow(service, tmp_path)

    assert ran == [("Check for a newer template release", 0)]
    assert calls == []
    assert git(remote, "branch", "--list", "template-update/*").stdout == ""
