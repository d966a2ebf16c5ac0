"""A platform monorepo of 12 services at mixed template versions takes one release with `update-all`.

In the middle of the fleet: one conflict, one dirty service, one whose tests fail after the update, one
requirement pin clash, one edited file that the release renames. One `update-all --commit` run must
give each service the right outcome, and the git state afterwards must be exactly what the report says.
The same fleet also shows that `--plan` predicts the update.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from devtools.render import git
from nexus_template.cli import main as cli
from tests.edits import PLATFORM_DOCSTRING, edit_file
from tests.histories import (
    TemplateHistory,
    answers,
    append_line,
    commit_all,
    generate,
    new_history,
    new_monorepo,
)

K8S = "template/{% if kubernetes %}deploy{% endif %}/kubernetes"
# a service test that leans on a template internal (the docstring of app/__main__.py)
FRAGILE_TEST = """

def test_the_entrypoint_is_the_platform_one() -> None:
    import ast
    from pathlib import Path

    entrypoint = Path(__file__).parents[1] / "app" / "__main__.py"
    assert ast.get_docstring(ast.parse(entrypoint.read_text())).startswith("Production entrypoint: ")
"""
# service -> (version it is at, answers, the outcome update-all must report)
FLEET: dict[str, tuple[str, dict[str, object], str]] = {
    "alpha": ("v1.0.0", {}, "ok"),
    "beta": ("v1.1.0", {}, "ok"),
    "gamma": ("v1.0.0", {"gpu": True}, "ok"),
    "delta": ("v1.0.0", {"kubernetes": False}, "ok"),
    "epsilon": ("v1.1.0", {"port": 9105}, "ok"),
    "zeta": ("v1.0.0", {}, "conflict"),  # edited a template-owned line the release changes
    "eta": ("v1.1.0", {}, "skipped"),  # uncommitted work
    "theta": ("v1.0.0", {}, "failed"),  # its own test breaks with the release
    "iota": ("v1.1.0", {}, "failed"),  # pins rich, which the release pins at another version
    "kappa": ("v1.0.0", {}, "review"),  # edited deploy/kubernetes/service.yaml, which the release renames
    "lambda": ("v1.0.0", {"etcd_registration": True}, "ok"),
    "mu": ("v1.2.0", {}, "ok"),  # already there
}


def _release_changes(history: TemplateHistory) -> None:
    history.replace(
        "template/app/__main__.py",
        PLATFORM_DOCSTRING,
        '"""Production entrypoint of the platform (v1.2.0)."""',
    )
    history.rename(f"{K8S}/service.yaml.jinja", f"{K8S}/svc.yaml.jinja")
    history.replace(
        "template/requirements.txt.jinja",
        "-r requirements-service.txt",
        "rich==14.0.0\n-r requirements-service.txt",
    )
    history.remove("template/app/_legacy.py")


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The monorepo, committed, with eta's uncommitted work; the template released up to v1.2.0."""
    root = tmp_path_factory.mktemp("fleet")
    history = new_history(root / "template")
    history.append("template/app/healthcheck.py.jinja", "\nIN_V1_1 = True\n")
    history.release("v1.1.0")
    monorepo = new_monorepo(root / "platform")
    for name, (version, extra, _) in FLEET.items():
        if version != "v1.2.0":
            generate(history.path, monorepo, name, version, **extra)
    services = monorepo / "services"
    checks = services / "zeta/app/__main__.py"
    edit_file(checks, (PLATFORM_DOCSTRING, '"""Entrypoint, tuned for zeta."""'))
    append_line(services / "theta/tests/test_service.py", FRAGILE_TEST)
    append_line(services / "iota/requirements-service.txt", "rich==13.9.4")
    append_line(services / "kappa/deploy/kubernetes/service.yaml", "# kappa: sticky sessions, see runbook")
    commit_all(monorepo, "service edits")
    _release_changes(history)
    history.release("v1.2.0")
    generate(history.path, monorepo, "mu", "v1.2.0")
    append_line(services / "eta/app/service.py", "# work in progress")
    return monorepo


def _copy(fleet: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "platform"
    shutil.copytree(fleet, copy, symlinks=True)
    return copy


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, dict]]:
    code = cli([*args, "--json"])
    report = json.loads(capsys.readouterr().out)
    return code, {result["service"]: result for result in report["services"]}


def _dirty_by_service(monorepo: Path) -> dict[str, set[str]]:
    lines = git(monorepo, "status", "--porcelain", "--untracked-files=all").stdout.splitlines()
    found: dict[str, set[str]] = {}
    for line in lines:
        _, name, relative = line[3:].split("/", 2)
        found.setdefault(name, set()).add(relative)
    return found


def test_one_update_all_gives_each_service_its_outcome_and_git_says_the_same(
    fleet: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monorepo = _copy(fleet, tmp_path)
    start = git(monorepo, "rev-parse", "HEAD").stdout.strip()
    began = time.monotonic()

    code, report = _run(
        capsys,
        "update-all",
        str(monorepo / "services"),
        "--commit",
        "--test",
        "--pytest-args",
        "tests/test_service.py",
    )

    elapsed = time.monotonic() - began
    print(f"update-all of {len(FLEET)} services with --test: {elapsed:.1f} s")
    assert code == 1
    assert {name: result["status"] for name, result in report.items()} == {
        name: outcome for name, (_, _, outcome) in FLEET.items()
    }
    assert report["zeta"]["conflicts"] == ["app/__main__.py"]
    assert "uncommitted changes" in report["eta"]["detail"]
    assert report["theta"]["tests"] == "failed"
    assert report["iota"]["dependency_clashes"] == [
        "rich is pinned to 14.0.0 in requirements.txt and 13.9.4 in requirements-service.txt"
    ]
    assert report["kappa"]["kept"][0].startswith(
        "deploy/kubernetes/service.yaml: renamed to deploy/kubernetes/svc.yaml by v1.2.0 but edited here"
    )
    assert report["mu"]["detail"] == "up to date"
    # every clean update is one commit of its own folder, in fleet order; nothing else was committed
    committed = [name for name, result in report.items() if result["committed"]]
    assert committed == ["alpha", "beta", "delta", "epsilon", "gamma", "lambda"]
    log = git(monorepo, "log", "--reverse", "--format=%s", f"{start}..HEAD").stdout.splitlines()
    assert log == [f"{name}: update nexus-template {report[name]['before']} → v1.2.0" for name in committed]
    # by the team's own git identity (the monorepo's user.name), not the updater's
    authors = git(monorepo, "log", "--format=%an <%ae>|%cn <%ce>", f"{start}..HEAD").stdout.splitlines()
    assert set(authors) == {"Service Author <author@nexus.invalid>|Service Author <author@nexus.invalid>"}
    for name in committed:
        touched = git(monorepo, "show", "--format=", "--name-only", f":/^{name}: update").stdout.split()
        assert {path.split("/")[1] for path in touched} == {name}
        assert answers(monorepo / "services" / name)["_commit"] == "v1.2.0"
    # what is left uncommitted is exactly what the report lists, service by service
    dirty = _dirty_by_service(monorepo)
    assert set(dirty) == {"zeta", "eta", "theta", "iota", "kappa"}
    for name in ("zeta", "theta", "iota", "kappa"):
        assert dirty[name] == set(report[name]["changed"] + report[name]["added"] + report[name]["removed"])
    assert dirty["eta"] == {"app/service.py"}
    assert answers(monorepo / "services/eta")["_commit"] == "v1.1.0"


def test_the_plan_predicts_the_update_and_writes_nothing(
    fleet: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monorepo = _copy(fleet, tmp_path)
    before = git(monorepo, "status", "--porcelain").stdout

    plan_code, plan = _run(capsys, "update-all", str(monorepo / "services"), "--plan")

    assert git(monorepo, "status", "--porcelain").stdout == before
    began = time.monotonic()
    code, update = _run(capsys, "update-all", str(monorepo / "services"))
    per_service = (time.monotonic() - began) / len(FLEET)
    print(f"update-all without tests: {per_service:.2f} s per service")
    assert plan_code == code == 1
    fields = ("before", "after", "status", "changed", "added", "removed", "conflicts", "kept", "answers")
    for name in FLEET:
        assert plan[name]["planned"] is True
        if name == "theta":  # the one outcome a plan cannot know: tests are not run by a plan
            assert plan[name]["status"] == update[name]["status"] == "ok"
        assert {field: plan[name][field] for field in fields} == {
            field: update[name][field] for field in fields
        }, name
        assert plan[name]["dependency_clashes"] == update[name]["dependency_clashes"]
    assert plan["kappa"]["kept"]
    assert plan["zeta"]["conflicts"]
    assert plan["iota"]["dependency_clashes"]
