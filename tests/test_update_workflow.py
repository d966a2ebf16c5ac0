"""The generated `template-update` workflow, run job by job and step by step on this machine.

Its `run:` steps are taken from the rendered YAML and run with bash: the `update` job in a service
repository whose `origin` is a bare repository, the `publish` job in a fresh clone of that origin (a
runner's own checkout). The hosting CLI (`gh`) is a recorder script on PATH, the artifact actions copy the
bundle from one job's temporary folder to the other's, and `${{ ... }}` expressions are filled from the
steps' `$GITHUB_OUTPUT` files and the jobs' `outputs:`, the way Actions does.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

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


class Context:
    """What `${{ ... }}` reads: this job's step outputs, earlier jobs' outputs, the runner's temp folder."""

    def __init__(self, temp: Path, needs: dict[str, dict[str, str]]) -> None:
        self.temp = temp
        self.needs = needs
        self.steps: dict[str, dict[str, str]] = {}

    def value(self, words: list[str]) -> str:
        if words[0] == "steps":
            return self.steps.get(words[1], {}).get(words[3], "")
        if words[0] == "needs":
            return self.needs.get(words[1], {}).get(words[3], "")
        if words == ["runner", "temp"]:
            return str(self.temp)
        assert words == ["github", "token"], words
        return "recorded-token"

    def expand(self, text: str) -> str:
        return re.sub(r"\$\{\{\s*([\w.-]+)\s*\}\}", lambda match: self.value(match.group(1).split(".")), text)

    def holds(self, text: str | None) -> bool:
        if text is None:
            return True
        match = re.fullmatch(r"([\w.-]+) == '([^']*)'", text.strip())
        assert match, f"the test understands only `X.Y... == '...'`, not {text!r}"
        return self.value(match.group(1).split(".")) == match.group(2)


def run_job(
    job: dict[str, Any], repo: Path, context: Context, *, artifacts: Path, tools: Path, log: Path
) -> list[tuple[str, int]]:
    """Run `job`'s steps in `repo`; [(step, exit code)] up to the first failure."""
    ran = []
    for index, step in enumerate(job["steps"]):
        if not context.holds(step.get("if")):
            continue
        action = step.get("uses", "").split("@")[0]
        arguments = {name: context.expand(str(value)) for name, value in step.get("with", {}).items()}
        if action == "actions/upload-artifact":
            shutil.copy(arguments["path"], artifacts / arguments["name"])
            continue
        if action == "actions/download-artifact":
            Path(arguments["path"]).mkdir(parents=True)
            shutil.copy(artifacts / arguments["name"], Path(arguments["path"]) / "template-update.bundle")
            continue
        if "run" not in step or step["run"].startswith("pip install"):
            continue  # checkout: `repo` is one; python and copier are installed here already
        output = context.temp / f"output-{index}"
        output.touch()
        env = {
            **os.environ,
            **GIT_IDENTITY,
            **{name: context.expand(str(value)) for name, value in step.get("env", {}).items()},
            "PATH": f"{tools}:{Path(sys.executable).parent}:{os.environ['PATH']}",
            "GITHUB_OUTPUT": str(output),
            "GH_LOG": str(log),
        }
        result = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", context.expand(step["run"])],
            cwd=repo,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        ran.append((step.get("name", step["run"].splitlines()[0]), result.returncode))
        if "id" in step:
            lines = output.read_text().splitlines()
            context.steps[step["id"]] = dict(line.split("=", 1) for line in lines if "=" in line)
        if result.returncode != 0:
            print(result.stdout, result.stderr)
            break
    return ran


def run_workflow(repo: Path, tmp_path: Path) -> tuple[list[tuple[str, int]], list[list[str]]]:
    """Run the workflow's jobs, `update` in `repo` and `publish` in a clone of its origin; ([(step, exit
    code)], [gh calls])."""
    jobs = yaml.safe_load((repo / WORKFLOW).read_text())["jobs"]
    assert list(jobs) == ["update", "publish"]
    tools = tmp_path / "tools"
    tools.mkdir()
    (tools / "gh").write_text(RECORDER)
    (tools / "gh").chmod(stat.S_IRWXU)
    log = tmp_path / "gh.log"
    log.touch()
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    needs: dict[str, dict[str, str]] = {}
    ran = []
    for job_id, job in jobs.items():
        temp = tmp_path / f"runner-temp-{job_id}"
        temp.mkdir()
        context = Context(temp, needs)
        if not context.holds(job.get("if")):
            continue
        workspace = repo
        if job_id != "update":  # a job of its own: a fresh checkout of main, which the run is for
            workspace = tmp_path / f"checkout-{job_id}"
            origin = git(repo, "remote", "get-url", "origin").stdout.strip()
            git(
                tmp_path, "clone", "--quiet", "--depth=1", "--branch=main", f"file://{origin}", str(workspace)
            )
        steps = run_job(job, workspace, context, artifacts=artifacts, tools=tools, log=log)
        ran += steps
        if any(code != 0 for _, code in steps):
            break
        needs[job_id] = {name: context.expand(value) for name, value in job.get("outputs", {}).items()}
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
    assert [code for _, code in ran] == [0, 0, 0, 1], ran
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

    assert [code for _, code in ran] == [0, 0, 0, 0], ran
    (create,) = calls
    assert "Conflicts" not in create[create.index("--body") + 1]
    assert "IN_V2 = True" in git(remote, "show", "template-update/v1.1.0:app/healthcheck.py").stdout


def test_no_release_no_branch(service_repo: tuple[Path, Path], tmp_path: Path) -> None:
    service, remote = service_repo

    ran, calls = run_workflow(service, tmp_path)

    assert ran == [("Check for a newer template release", 0)]
    assert calls == []
    assert git(remote, "branch", "--list", "template-update/*").stdout == ""
