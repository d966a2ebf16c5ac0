"""A monorepo as the issue's platform team lays it out (issue 25): the root rendered with
`layout: monorepo-root`, three services under services/ with `layout: monorepo`.

GitHub runs only the root's .github/workflows: no service renders one, and the root's services.yml chooses
the services to check with `nexus-template matrix`. Its discovery step is run here as the workflow runs
it (the `run:` text of the rendered file, in bash, with the inputs GitHub gives it), against commits that
touch one service, a shared file, or nothing of the services. The root stays current by `copier update`,
like a service. (tests/test_workflows.py checks the root's workflows for least privilege.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from devtools.render import GIT_IDENTITY, ROOT, git, render
from nexus_template.cli import main as cli
from tests.histories import TemplateHistory, commit_all, new_monorepo

WORKFLOWS = Path(".github/workflows")
# service -> its answers besides service_name and layout
SERVICES: dict[str, dict[str, object]] = {
    "llm-wrapper": {"backend": "openai"},
    "tts": {"python_version": "3.12"},
    "image-gpu": {"gpu": True, "kubernetes": False},
}
# the bin folder of this interpreter's environment: its nexus-template is this checkout's (editable)
BIN = Path(sys.executable).parent


def render_root(template: Path, repository: Path, **options: Any) -> Path:
    return render(template, repository, {"layout": "monorepo-root"}, **options)


@pytest.fixture(scope="module")
def fleet(template_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The monorepo: its root's workflows and three services, committed (rendered once for the module)."""
    repository = new_monorepo(tmp_path_factory.mktemp("fleet") / "platform")
    render_root(template_repo, repository)
    for name, answers in SERVICES.items():
        render(
            template_repo,
            repository / "services" / name,
            {"service_name": name, "layout": "monorepo", **answers},
        )
    commit_all(repository, "the root's workflows and three services")
    return repository


def discovery_step(repository: Path) -> dict[str, Any]:
    workflow = yaml.safe_load((repository / WORKFLOWS / "services.yml").read_text())
    steps: list[dict[str, Any]] = workflow["jobs"]["discover"]["steps"]
    (step,) = [step for step in steps if step.get("id") == "matrix"]
    return step


def run_discovery(repository: Path, base: str, tmp_path: Path) -> list[dict[str, str]]:
    """The discovery step as GitHub runs it (bash -e, BASE from the event, GITHUB_OUTPUT a file): its matrix."""
    step = discovery_step(repository)
    output = tmp_path / "github-output"
    output.write_text("")
    environment = {
        **os.environ,
        **step["env"],
        "BASE": base,
        "GITHUB_OUTPUT": str(output),
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
    }
    subprocess.run(["bash", "-e", "-c", step["run"]], cwd=repository, env=environment, check=True, timeout=60)
    (line,) = output.read_text().splitlines()
    name, _, value = line.partition("=")
    assert name == "services"
    matrix: list[dict[str, str]] = json.loads(value)
    return matrix


@pytest.fixture
def change(fleet: Path, tmp_path: Path) -> Iterator[Callable[[Callable[[Path], None]], list[str]]]:
    """change(edit) -> the services the discovery step lists for one commit made of `edit`; the fleet goes
    back to its commit afterwards."""
    start = git(fleet, "rev-parse", "HEAD").stdout.strip()

    def run(edit: Callable[[Path], None]) -> list[str]:
        edit(fleet)
        commit_all(fleet, "a change")
        return [entry["name"] for entry in run_discovery(fleet, start, tmp_path)]

    yield run
    git(fleet, "reset", "--quiet", "--hard", start)


def append(relative: str, text: str = "# changed\n") -> Callable[[Path], None]:
    def edit(repository: Path) -> None:
        path = repository / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text((path.read_text() if path.exists() else "") + text)

    return edit


def test_services_render_no_workflow_and_the_root_renders_one_per_job(fleet: Path) -> None:
    for name in SERVICES:
        assert (fleet / "services" / name / "app" / "service.py").is_file()
        assert not (fleet / "services" / name / ".github").exists(), name
    assert sorted(path.name for path in (fleet / WORKFLOWS).iterdir()) == [
        "services.yml",
        "template-update.yml",
    ]
    root_answers = yaml.safe_load((fleet / ".copier-answers.yml").read_text())
    # the root is no service: none of the service questions is answered there, so update-all skips it
    assert {name for name in root_answers if not name.startswith("_")} == {"layout", "services_folder"}
    assert not (fleet / "app").exists()
    assert not (fleet / "release").exists()


def test_a_change_to_one_service_checks_that_service_only(change: Callable[..., list[str]]) -> None:
    assert change(append("services/tts/app/service.py")) == ["tts"]


def test_a_change_to_two_services_checks_both(change: Callable[..., list[str]]) -> None:
    def edit(repository: Path) -> None:
        append("services/image-gpu/image/system-packages.txt")(repository)
        append("services/llm-wrapper/tests/test_service.py")(repository)

    assert sorted(change(edit)) == ["image-gpu", "llm-wrapper"]


def test_a_service_moved_in_checks_it(change: Callable[..., list[str]]) -> None:
    def edit(repository: Path) -> None:
        git(repository, "mv", "services/tts", "services/speech")

    assert change(edit) == ["tts"]  # listed by its name, at its new path (the old one is gone)


def test_a_change_outside_the_services_checks_none(change: Callable[..., list[str]]) -> None:
    assert change(append("README.md")) == []
    assert change(append("services/README.md")) == []  # in the folder, in no service


def test_a_change_to_the_root_workflow_or_its_inputs_checks_every_service(
    change: Callable[..., list[str]],
) -> None:
    for shared in (
        ".github/workflows/services.yml",
        ".github/requirements-copier.txt",
        ".copier-answers.yml",
    ):
        assert sorted(change(append(shared))) == sorted(SERVICES), shared


def test_an_unknown_base_checks_every_service(fleet: Path, tmp_path: Path) -> None:
    # a manual run (no base), a new branch (GitHub's `before` is all zeros), a base this clone lacks
    for base in ("", "0" * 40, "1234567890abcdef1234567890abcdef12345678"):
        entries = run_discovery(fleet, base, tmp_path)
        assert sorted(entry["name"] for entry in entries) == sorted(SERVICES), base


def test_the_matrix_entries_carry_what_the_jobs_need(fleet: Path, tmp_path: Path) -> None:
    entries = {entry["name"]: entry for entry in run_discovery(fleet, "", tmp_path)}
    assert entries["tts"] == {
        "name": "tts",
        "path": "services/tts",
        "python": "3.12",
        "image": "nexus/tts",
    }
    assert entries["llm-wrapper"]["python"] == "3.11"
    for entry in entries.values():
        assert (fleet / entry["path"] / "requirements-dev.txt").is_file()  # the jobs' working directory


def test_the_root_takes_a_release_with_copier_update_and_changes_nothing_else(
    history: TemplateHistory, tmp_path: Path
) -> None:
    repository = new_monorepo(tmp_path / "platform")
    render_root(history.path, repository, vcs_ref="v1.0.0")
    render(history.path, repository / "services" / "tts", {"service_name": "tts", "layout": "monorepo"},
           vcs_ref="v1.0.0")  # fmt: skip
    commit_all(repository, "root and one service at v1.0.0")
    history.append("monorepo/.github/workflows/services.yml.jinja", "# changed in v1.1.0\n")
    history.release("v1.1.0")

    # as the root's template-update.yml runs it
    copier = BIN / "copier"
    updated = subprocess.run(
        [str(copier), "update", "--trust", "--defaults", "--conflict", "inline"],
        cwd=repository,
        env={**os.environ, **GIT_IDENTITY},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert updated.returncode == 0, updated.stderr
    changed = git(repository, "status", "--porcelain", "--untracked-files=all").stdout.splitlines()
    # the workflows install nexus-template at the release's commit: both move with every release
    assert sorted(line[3:] for line in changed) == [
        ".copier-answers.yml",
        ".github/workflows/services.yml",
        ".github/workflows/template-update.yml",
    ]
    assert (repository / WORKFLOWS / "services.yml").read_text().endswith("# changed in v1.1.0\n")
    answers = yaml.safe_load((repository / ".copier-answers.yml").read_text())
    assert answers["_commit"] == "v1.1.0"
    assert answers["layout"] == "monorepo-root"


def test_a_service_made_with_its_own_workflows_drops_them_with_the_layout_answer(
    history: TemplateHistory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A monorepo made before `layout` existed: each service has the workflows GitHub never runs there."""
    repository = new_monorepo(tmp_path / "platform")
    service = render(history.path, repository / "services" / "tts", {"service_name": "tts"}, vcs_ref="v1.0.0")
    workflows = service / WORKFLOWS
    (workflows / "service.yml").write_text((workflows / "service.yml").read_text() + "# our own job\n")
    commit_all(repository, "a service with its own workflows")

    code = cli(["update", str(service), "--data", "layout=monorepo", "--offline", "--json"])
    (result,) = json.loads(capsys.readouterr().out)["services"]

    assert result["answers"] == {"layout": ["repository", "monorepo"]}
    assert not (workflows / "ci.yml").exists()
    assert not (workflows / "template-update.yml").exists()
    assert not (service / ".github/requirements-copier.txt").exists()
    # the service's own workflow, edited, is kept and named: its jobs belong in the root's workflows now
    assert (workflows / "service.yml").read_text().endswith("# our own job\n")
    assert (code, result["status"]) == (1, "review")
    # the tools that read only a repository's root go too (the monorepo's root has Renovate's)
    assert result["removed"] == [
        ".github/requirements-copier.txt",
        ".github/workflows/ci.yml",
        ".github/workflows/template-update.yml",
        ".pre-commit-config.yaml",
        "renovate.json",
    ]
    assert [kept.split(":")[0] for kept in result["kept"]] == [".github/workflows/service.yml"]


def test_the_root_renovate_configuration_is_a_service_s_own() -> None:
    """Renovate reads only the repository's root: a monorepo's root carries the rules a service repository
    has (its services render none)."""
    service = json.loads((ROOT / "template" / "renovate.json").read_text())
    root = json.loads((ROOT / "monorepo" / "renovate.json").read_text())
    assert {key: value for key, value in root.items() if key != "description"} == {
        key: value for key, value in service.items() if key != "description"
    }
