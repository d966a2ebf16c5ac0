"""The generated GitHub workflows give no job more than it needs (issue 22), on every answer set and in a
monorepo's root (issue 25), and have the structure GitHub expects (SchemaStore's schema).

`copier update --trust` runs the template's extensions and migrations, so the job that runs it must hold a
read-only token; only a job that runs nothing from the template or the update may write. Every checkout
leaves no credentials in .git/config, every action is pinned by commit (with its tag in a comment, which
the dependency-update configuration reads), and copier comes from a lock with hashes.
"""

from __future__ import annotations

import json
import re
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from devtools.render import ROOT, answer_sets, render
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


# SchemaStore's schema of a workflow file, as check-jsonschema 0.39.0 vendors it (Apache-2.0): the structure
# GitHub expects (keys, events, job and step fields), offline
WORKFLOW_SCHEMA = ROOT / "tests" / "schemas" / "github-workflow.schema.json"
# the monorepo root's jobs (monorepo/.github/workflows/): only `publish` writes, as in a service
ROOT_JOBS = {
    ("services.yml", "discover"),
    ("services.yml", "check"),
    ("services.yml", "image"),
    ("template-update.yml", "update"),
    ("template-update.yml", "publish"),
}
# a command line (or command substitution) that runs copier or nexus-template
TEMPLATE_COMMAND = re.compile(r"(?m)(?:^\s*|\$\()(?:copier|nexus-template)\s")
# how the root installs nexus-template: its dependencies from the copier lock, then its own code at the
# commit the root was rendered from (and, to update services, the uv it locks with)
TOOL_INSTALL = re.compile(r'^pip install --no-deps "git\+\S+@[0-9a-f]{40}"( "uv==(?P<uv>\S+)")?$')


@pytest.fixture(scope="module")
def monorepo_root(template_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The root of a monorepo, rendered with `layout: monorepo-root` (tests/test_monorepo.py runs it)."""
    return render(template_repo, tmp_path_factory.mktemp("root") / "platform", {"layout": "monorepo-root"})


def structure_errors(workflow: dict[Any, Any]) -> list[str]:
    """What the schema finds wrong with a workflow (PyYAML reads the key `on` as True, as YAML 1.1 says)."""
    document = {("on" if key is True else key): value for key, value in workflow.items()}
    validator = jsonschema.Draft7Validator(json.loads(WORKFLOW_SCHEMA.read_text()))
    return [
        f"{'/'.join(map(str, error.absolute_path))}: {error.message}"
        for error in validator.iter_errors(document)
    ]


@pytest.mark.parametrize("name", answer_sets())
def test_every_workflow_has_the_structure_github_expects(rendered, name: str) -> None:
    for file, (_, workflow) in workflows(rendered(name)).items():
        assert structure_errors(workflow) == [], file


def test_a_monorepo_service_renders_no_workflow(template_repo: Path, tmp_path: Path) -> None:
    service = render(template_repo, tmp_path / "tts", {"service_name": "tts", "layout": "monorepo"})
    assert not (service / ".github").exists()  # GitHub would ignore it: the root's workflows do its work


def test_the_monorepo_roots_workflows_have_the_structure_github_expects(monorepo_root: Path) -> None:
    files = workflows(monorepo_root)
    assert set(files) == {"services.yml", "template-update.yml"}
    for file, (_, workflow) in files.items():
        assert structure_errors(workflow) == [], file


def test_the_monorepo_root_declares_least_privilege(monorepo_root: Path) -> None:
    for file, (_, workflow) in workflows(monorepo_root).items():
        assert workflow.get("permissions") == {}, file
    root_jobs = jobs(monorepo_root)
    assert set(root_jobs) == ROOT_JOBS
    writers = {}
    for key, job in root_jobs.items():
        permissions = job.get("permissions")
        assert isinstance(permissions, dict), f"{key}: permissions per job, as a mapping (not read-all)"
        assert set(permissions.values()) <= {"read", "write", "none"}, key
        if "write" in permissions.values():
            writers[key] = permissions
    assert writers == {PUBLISHER: PUBLISHER_PERMISSIONS}


def test_the_monorepo_roots_checkouts_keep_no_credentials_and_actions_are_pinned_like_a_services(
    monorepo_root: Path, rendered
) -> None:
    checkouts = [step for job in jobs(monorepo_root).values() for step in uses(job, "actions/checkout")]
    assert len(checkouts) == len(ROOT_JOBS)
    assert all(step.get("with", {}).get("persist-credentials") is False for step in checkouts)
    service_pins = {
        line.strip().removeprefix("- ")
        for text, _ in workflows(rendered("default")).values()
        for line in text.splitlines()
        if re.match(r"^\s*(?:- )?uses:", line)
    }
    for file, (text, _) in workflows(monorepo_root).items():
        for line in text.splitlines():
            if re.match(r"^\s*(?:- )?uses:", line):
                assert PINNED.match(line), (
                    f"{file}: {line.strip()!r} is not `uses: owner/repo@<commit> # vX.Y.Z`"
                )
                # the same commit as the services' workflows, so one dependency update moves them together
                assert line.strip().removeprefix("- ") in service_pins, line


def test_the_monorepo_roots_template_code_runs_only_where_nothing_can_be_written(monorepo_root: Path) -> None:
    root_jobs = jobs(monorepo_root)
    runs_template = {
        key
        for key, job in root_jobs.items()
        if any(TEMPLATE_COMMAND.search(step.get("run", "")) for step in job["steps"])
    }
    assert runs_template == {("services.yml", "discover"), ("template-update.yml", "update")}
    for key in runs_template:
        assert root_jobs[key]["permissions"] == {"contents": "read"}, key
        assert not re.search(r"secrets\.|github\.token|GITHUB_TOKEN", yaml.safe_dump(root_jobs[key]["steps"]))
    updater, publisher = root_jobs[("template-update.yml", "update")], root_jobs[PUBLISHER]
    assert any(
        "nexus-template update-all services --commit" in step.get("run", "") for step in updater["steps"]
    )
    assert any("copier update --trust" in step.get("run", "") for step in updater["steps"])
    assert publisher["needs"] == "update"
    for step in publisher["steps"]:
        if "run" in step:
            assert not RUNS_CODE.search(step["run"]), step["run"]
        else:
            assert step["uses"].split("@")[0] in {"actions/checkout", "actions/download-artifact"}, step
            assert not {"ref", "repository"} & set(step.get("with", {})), step
    (upload,) = uses(updater, "actions/upload-artifact")
    (download,) = uses(publisher, "actions/download-artifact")
    assert upload["with"]["name"] == download["with"]["name"]
    (push,) = [step["run"] for step in publisher["steps"] if " push " in step.get("run", "")]
    assert "git fetch --no-tags" in push


def test_the_monorepo_root_installs_copier_from_the_lock_and_nexus_template_at_a_commit(
    monorepo_root: Path,
) -> None:
    assert (monorepo_root / ".github/requirements-copier.txt").read_text() == COPIER_LOCK.read_text()
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    (uv_pin,) = [pin for pin in dependencies if pin.startswith("uv==")]
    for key, job in jobs(monorepo_root).items():
        installs = [
            step["run"] for step in job["steps"] if re.search(r"\bpip3? install\b", step.get("run", ""))
        ]
        if key not in {("services.yml", "discover"), ("template-update.yml", "update")}:
            continue  # a service's own requirements (check), or nothing (image, publish)
        assert installs[0] == "pip install --require-hashes -r .github/requirements-copier.txt", key
        (tool,) = installs[1:]
        installed = TOOL_INSTALL.match(tool)
        assert installed, tool
        if key[1] == "update":  # update-all refreshes each service's lock with the uv it is tested with
            assert f"uv=={installed['uv']}" == uv_pin
