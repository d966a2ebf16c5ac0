"""The generated GitHub workflows give no job more than it needs (issue 22), on every answer set.

`copier update --trust` runs the template's extensions and migrations, so the job that runs it must hold a
read-only token; only a job that runs nothing from the template or the update may write. Every checkout
leaves no credentials in .git/config, every action is pinned by commit (with its tag in a comment, which
the dependency-update configuration reads), and copier comes from a lock with hashes.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from devtools.render import ROOT, answer_sets
from tests.locks import COPIER_LOCK, copier_lock_command, copier_pins

WORKFLOWS = Path(".github/workflows")
# `uses: owner/repo@<commit> # vX.Y.Z`, as Renovate's and Dependabot's digest pinning write it
PINNED = re.compile(
    r"^\s*(?:- )?uses: (?P<action>[\w.-]+/[\w./-]+)@(?P<commit>[0-9a-f]{40}) # (?P<tag>v\d+(?:\.\d+)*)$"
)
# in a job that can write: anything that runs code from the repository or the template, or lays out a work
# tree from the update (a checkout runs .gitattributes filters such as git-lfs)
RUNS_CODE = re.compile(
    r"\b(?:copier|python3?|pip3?|uv|make|npm|npx|bash|sh|source)\b|\./|\.sh\b"
    r"|\bgit\s+(?:checkout|switch|merge|am|apply|rebase|reset|submodule|restore)\b"
)
# the one job allowed to write: it pushes the update's branch and opens the pull request
PUBLISHER = ("template-update.yml", "publish")
PUBLISHER_PERMISSIONS = {"contents": "write", "pull-requests": "write"}


def workflows(service: Path) -> dict[str, tuple[str, dict[str, Any]]]:
    """file name -> (its text, its YAML) for every workflow the service renders."""
    found = {}
    for path in sorted((service / WORKFLOWS).glob("*.y*ml")):
        text = path.read_text()
        found[path.name] = (text, yaml.safe_load(text))
    return found


def jobs(service: Path) -> dict[tuple[str, str], dict[str, Any]]:
    """(workflow file, job id) -> the job."""
    return {
        (file, job_id): job
        for file, (_, workflow) in workflows(service).items()
        for job_id, job in workflow["jobs"].items()
    }


def runs_copier(job: dict[str, Any]) -> bool:
    return any(re.search(r"\bcopier\b", step.get("run", "")) for step in job["steps"])


def uses(job: dict[str, Any], action: str) -> list[dict[str, Any]]:
    return [step for step in job["steps"] if step.get("uses", "").startswith(f"{action}@")]


@pytest.mark.parametrize("name", answer_sets())
def test_every_job_declares_least_privilege(rendered, name: str) -> None:
    service = rendered(name)
    files = workflows(service)
    assert set(files) == {"ci.yml", "service.yml", "template-update.yml"}
    for file, (_, workflow) in files.items():
        # the default for a job that names none: nothing, or reading the repository
        assert workflow.get("permissions") in ({}, {"contents": "read"}), file
    writers = {}
    for key, job in jobs(service).items():
        permissions = job.get("permissions")
        assert isinstance(permissions, dict), f"{key}: permissions per job, as a mapping (not read-all)"
        assert set(permissions.values()) <= {"read", "write", "none"}, key
        if "write" in permissions.values():
            writers[key] = permissions
    assert writers == {PUBLISHER: PUBLISHER_PERMISSIONS}


@pytest.mark.parametrize("name", answer_sets())
def test_checkouts_keep_no_credentials_and_actions_are_pinned_by_commit(rendered, name: str) -> None:
    service = rendered(name)
    checkouts = 0
    for key, job in jobs(service).items():
        for step in uses(job, "actions/checkout"):
            checkouts += 1
            assert step.get("with", {}).get("persist-credentials") is False, key
    assert checkouts == 5  # ci: test, image; service: example; template-update: update, publish
    pins: dict[str, set[tuple[str, str]]] = {}
    for file, (text, workflow) in workflows(service).items():
        lines = [line for line in text.splitlines() if re.match(r"^\s*(?:- )?uses:", line)]
        used = [step["uses"] for job in workflow["jobs"].values() for step in job["steps"] if "uses" in step]
        assert len(lines) == len(used), file
        for line in lines:
            pinned = PINNED.match(line)
            assert pinned, f"{file}: {line.strip()!r} is not `uses: owner/repo@<commit> # vX.Y.Z`"
            pins.setdefault(pinned["action"], set()).add((pinned["commit"], pinned["tag"]))
    # one commit and tag per action across the workflows, so an update moves them together
    assert all(len(versions) == 1 for versions in pins.values()), pins
    assert set(pins) == {
        "actions/checkout", "actions/setup-python", "actions/upload-artifact", "actions/download-artifact",
    }  # fmt: skip


@pytest.mark.parametrize("name", answer_sets())
def test_template_code_runs_only_where_nothing_can_be_written(rendered, name: str) -> None:
    service = rendered(name)
    all_jobs = jobs(service)
    updaters = {key: job for key, job in all_jobs.items() if runs_copier(job)}
    assert list(updaters) == [("template-update.yml", "update")]
    (updater,) = updaters.values()
    assert any("copier update --trust" in step.get("run", "") for step in updater["steps"])
    assert updater["permissions"] == {"contents": "read"}
    # no token or secret reaches a step of the job that runs the template's code
    assert not re.search(r"secrets\.|github\.token|GITHUB_TOKEN", yaml.safe_dump(updater["steps"]))

    publisher = all_jobs[PUBLISHER]
    assert publisher["needs"] == "update"
    for step in publisher["steps"]:
        if "run" in step:
            assert not RUNS_CODE.search(step["run"]), step["run"]
        else:  # only the checkout (no ref: the branch that triggered the run) and the update's bundle
            assert step["uses"].split("@")[0] in {"actions/checkout", "actions/download-artifact"}, step
            assert not {"ref", "repository"} & set(step.get("with", {})), step
    # the update reaches the publishing job only as the artifact the updating job uploaded
    (upload,) = uses(updater, "actions/upload-artifact")
    (download,) = uses(publisher, "actions/download-artifact")
    assert upload["with"]["name"] == download["with"]["name"]
    (push,) = [step["run"] for step in publisher["steps"] if " push " in step.get("run", "")]
    assert "git fetch --no-tags" in push  # one branch from the bundle, nothing else


@pytest.mark.parametrize("name", answer_sets())
def test_copier_is_installed_from_a_lock_with_hashes(rendered, name: str) -> None:
    service = rendered(name)
    installs = [
        step["run"]
        for job in jobs(service).values()
        for step in job["steps"]
        if re.search(r"\bpip3? install\b", step.get("run", "")) and runs_copier(job)
    ]
    assert installs == ["pip install --require-hashes -r .github/requirements-copier.txt"]
    lock = (service / ".github/requirements-copier.txt").read_text()
    assert lock == COPIER_LOCK.read_text()
    entries = re.split(r"\n(?=[A-Za-z0-9])", lock.split("\n", 2)[2].strip())
    assert all("--hash=sha256:" in entry for entry in entries), "every entry has its hashes"
    locked = {entry.split(" ", 1)[0] for entry in entries}
    assert set(copier_pins().split()) <= locked, (
        "the workflow installs the copier the template is tested with"
    )


@pytest.mark.xdist_group("uv")  # one uv cache, as tests/test_lock.py
def test_the_copier_lock_is_current(tmp_path: Path) -> None:
    copy = tmp_path / COPIER_LOCK.name
    copy.write_text(COPIER_LOCK.read_text())
    subprocess.run(copier_lock_command(copy), input=copier_pins(), text=True, cwd=ROOT, check=True)
    assert copy.read_text() == COPIER_LOCK.read_text(), "pyproject.toml's copier pins changed: `make lock`"
