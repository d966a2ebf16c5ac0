"""Update round trips on real template histories (the pattern of copier's tests/test_updatediff.py).

A template repository is built from the working tree and released as tags; services are rendered into a
monorepo (services/<name>/), edited the way service authors do and committed; the template then changes
the way maintainers change it, and `nexus-template update` / `update-all` bring the change in.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from devtools.render import ROOT, copy_working_tree_files, git, run_python
from devtools.wheel import build_wheel, sha256
from nexus_template.cli import main as cli
from nexus_template.updating import update_service
from tests.edits import PLATFORM_DOCSTRING, edit_file
from tests.histories import TemplateHistory, answers, commit_all, generate

# --- what service authors do ------------------------------------------------------------------------

NEW_IMPORTS = """from litestar import get
from litestar.di import NamedDependency

from {platform} import CheckResult, NexusContext

"""
NEW_ROUTE = """

@get("/v1/hello", summary="Greets (added by the service author)")
async def hello(nexus: NamedDependency[NexusContext]) -> dict[str, str]:
    return {"greeting": nexus.service_settings.greeting}


async def cache_warm(nexus: NexusContext) -> CheckResult:
    return CheckResult("pass", output="cache warm")
"""

SERVICE_TEST = '''"""Added by the service author."""


def test_hello(client) -> None:
    assert client.get("/v1/hello").json() == {"greeting": "hello"}
    assert client.get("/readyz").json()["checks"]["cache:warm"][0]["output"] == "cache warm"
'''


def platform_package(service: Path) -> str:
    """What the service imports the platform from: its vendored app.nexus up to v0.3.0, then the library."""
    return "app.nexus" if (service / "app" / "nexus").is_dir() else "nexus_platform"


def make_service_edits(service: Path) -> dict[str, str]:
    """Edit the service the way its authors do; return the files whose content must survive byte for byte."""
    module = service / "app" / "service.py"
    platform = platform_package(service)
    # anchors that the service of every release these stories start from has (v0.1.0 on)
    edit_file(
        module,
        ("\nimport time\n", "\n" + NEW_IMPORTS.format(platform=platform) + "import time\n"),
        (
            '    example_prefix: Annotated[str, msgspec.Meta(max_length=32)] = ""',
            '    example_prefix: Annotated[str, msgspec.Meta(max_length=32)] = ""\n    greeting: str = "hello"',
        ),
        ("\n\nservice = ServiceSpec(", NEW_ROUTE + "\n\nservice = ServiceSpec("),
        ("route_handlers=[echo],", "route_handlers=[echo, hello],"),
        ("readiness_checks={},", 'readiness_checks={"cache:warm": cache_warm},'),
    )
    (service / "requirements-service.txt").write_text(
        (service / "requirements-service.txt").read_text() + "rich==13.9.4\n"
    )
    if (service / "requirements.lock").is_file():  # a service of a release with locks: relock, as authors do
        assert run_python(service, "-m", platform, "lock").returncode == 0
    (service / "app" / "extra.py").write_text('"""A module of the service\'s own."""\n\nANSWER = 42\n')
    (service / "tests" / "test_hello.py").write_text(SERVICE_TEST)
    env = service / ".env.example"
    env.write_text(env.read_text() + "# Greeting of /v1/hello\nGREETING=hello\n")
    edit_file(
        service / "README.md",
        (
            "What this service does, which backend it wraps, who to call when it breaks. (Yours to write.)",
            "Greets people. Owned by the greeting team; page #greeters when it breaks.",
        ),
    )
    return {
        path: (service / path).read_text()
        for path in ("app/service.py", "requirements-service.txt", "app/extra.py", "tests/test_hello.py")
    }


# --- what template maintainers do -------------------------------------------------------------------


def change_template(template: TemplateHistory) -> None:
    template.append("template/app/__main__.py", "\n\nPLATFORM_CHANGE = 'changed in v1.1.0'\n")
    template.write(
        "template/app/_added.py",
        "# Managed by nexus-template: `copier update` replaces this file.\nADDED = True\n",
    )
    template.remove("template/app/_legacy.py")
    # a pin the release adds: the update relocks
    template.replace(
        "template/requirements.txt.jinja",
        "-r requirements-service.txt",
        "httpx==0.28.0\n-r requirements-service.txt",
    )
    template.append("copier.yml", "\nnew_question:\n  type: str\n  help: Added in v1.1.0\n  default: fresh\n")
    template.append("template/app/main.py.jinja", 'NEW_QUESTION = "{{ new_question }}"\n')
    template.replace(
        "template/README.md.jinja",
        "| `GET /v1/models` | OpenAI model list |",
        "| `GET /v1/models` | OpenAI model list (changed in v1.1.0) |",
    )
    # the template's part of .env.example outside the settings (those come from the library's code, and
    # change with its pin)
    template.replace("template/.env.example.jinja", _ENV_HEADER, f"{_ENV_HEADER} (changed in v1.1.0)")


_ENV_HEADER = "# you need: every variable is optional and shows its default."


def assert_tests_pass(service: Path) -> None:
    result = run_python(service, "-m", "pytest", "-q", "-p", "no:cacheprovider")
    assert result.returncode == 0, result.stdout[-3000:]


# --- the scenarios ----------------------------------------------------------------------------------


def test_update_keeps_every_service_edit_and_brings_every_template_change(
    history: TemplateHistory, monorepo: Path
) -> None:
    service = generate(history.path, monorepo, "greeter", "v1.0.0")
    kept = make_service_edits(service)
    commit_all(monorepo, "service edits")
    change_template(history)
    history.release("v1.1.0")

    result = update_service(service, run_tests=True)

    assert (result.before, result.after, result.status, result.conflicts) == ("v1.0.0", "v1.1.0", "ok", [])
    assert result.tests == "passed"
    for path, content in kept.items():
        assert (service / path).read_text() == content, f"{path} changed"
    readme = (service / "README.md").read_text()
    assert "Greets people. Owned by the greeting team" in readme
    assert "OpenAI model list (changed in v1.1.0)" in readme
    env = (service / ".env.example").read_text()
    assert "GREETING=hello\n" in env
    assert f"{_ENV_HEADER} (changed in v1.1.0)" in env
    assert "PLATFORM_CHANGE = 'changed in v1.1.0'" in (service / "app/__main__.py").read_text()
    assert (service / "app/_added.py").is_file()
    assert not (service / "app/_legacy.py").exists()
    assert "httpx==0.28.0\n" in (service / "requirements.txt").read_text()
    assert "\nhttpx==0.28.0 \\\n" in (service / "requirements.lock").read_text()  # the update relocked it
    assert 'NEW_QUESTION = "fresh"' in (service / "app/main.py").read_text()
    assert answers(service)["_commit"] == "v1.1.0"
    assert answers(service)["new_question"] == "fresh"


def test_a_service_edit_inside_a_template_file_is_reported_as_a_conflict(
    history: TemplateHistory, monorepo: Path
) -> None:
    service = generate(history.path, monorepo, "greeter", "v1.0.0")
    checks = service / "app/__main__.py"
    edit_file(checks, (PLATFORM_DOCSTRING, '"""Entrypoint, tuned for our Ollama backend."""'))
    commit_all(monorepo, "edit a template-owned file (the wrong thing to do)")
    history.replace(
        "template/app/__main__.py",
        PLATFORM_DOCSTRING,
        '"""Production entrypoint of the platform (changed in v1.1.0)."""',
    )
    history.release("v1.1.0")

    result = update_service(service)

    assert (result.status, result.conflicts) == ("conflict", ["app/__main__.py"])
    text = checks.read_text()
    assert re.search(r"^<<<<<<< ", text, re.MULTILINE)
    assert "tuned for our Ollama backend" in text  # the service's edit is kept, between the markers
    # and the service's own test suite refuses to pass with the markers left in
    suite = run_python(service, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "conflict_markers")
    assert suite.returncode != 0
    assert "app/__main__.py" in suite.stdout + suite.stderr


def test_skipping_a_version(history: TemplateHistory, monorepo: Path) -> None:
    service = generate(history.path, monorepo, "greeter", "v1.0.0")
    history.append("template/app/__main__.py", "\nIN_V2 = True\n")
    history.release("v2.0.0")
    history.append("template/app/healthcheck.py.jinja", "\nIN_V3 = True\n")
    history.release("v3.0.0")

    result = update_service(service)

    assert (result.before, result.after, result.conflicts) == ("v1.0.0", "v3.0.0", [])
    assert "IN_V2 = True" in (service / "app/__main__.py").read_text()
    assert "IN_V3 = True" in (service / "app/healthcheck.py").read_text()
    assert_tests_pass(service)


def test_an_answer_can_be_changed_by_an_update(history: TemplateHistory, monorepo: Path) -> None:
    service = generate(history.path, monorepo, "greeter", "v1.0.0")
    result = update_service(service, data={"port": "9100"})
    assert result.conflicts == []
    assert answers(service)["port"] == 9100
    assert "EXPOSE 9100\n" in (service / "Dockerfile").read_text()


def test_a_dirty_service_is_not_updated(history: TemplateHistory, monorepo: Path) -> None:
    service = generate(history.path, monorepo, "greeter", "v1.0.0")
    history.append("template/app/__main__.py", "\nIN_V2 = True\n")
    history.release("v2.0.0")
    (service / "app" / "service.py").write_text(
        (service / "app" / "service.py").read_text() + "\n# work in progress\n"
    )

    result = update_service(service)

    assert result.status == "skipped"
    assert "uncommitted" in result.detail
    assert "IN_V2" not in (service / "app/__main__.py").read_text()


def test_fleet_update_reports_every_service(
    history: TemplateHistory, monorepo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clean = generate(history.path, monorepo, "alpha", "v1.0.0")
    conflicting = generate(history.path, monorepo, "beta", "v1.0.0", port=9101)
    dirty = generate(history.path, monorepo, "gamma", "v1.0.0", gpu=True)
    checks = conflicting / "app/__main__.py"
    edit_file(checks, (PLATFORM_DOCSTRING, '"""Entrypoint, tuned for our Ollama backend."""'))
    commit_all(monorepo, "beta edits a template file")
    (dirty / "README.md").write_text("uncommitted\n")
    history.replace(
        "template/app/__main__.py",
        PLATFORM_DOCSTRING,
        '"""Production entrypoint of the platform (changed in v1.1.0)."""',
    )
    history.release("v1.1.0")

    exit_code = cli(["update-all", str(monorepo / "services"), "--test", "--commit"])

    captured = capsys.readouterr()
    out = captured.out
    assert exit_code == 1, captured.err
    rows = {
        line.split("|")[0].strip(): [cell.strip() for cell in line.split("|")]
        for line in out.splitlines()[2:]
    }
    assert set(rows) == {"alpha", "beta", "gamma"}
    assert rows["alpha"][1:] == ["v1.0.0 → v1.1.0", rows["alpha"][2], "-", "passed", "ok (committed)"], (
        captured.err
    )
    assert rows["beta"][3] == "app/__main__.py"
    assert rows["beta"][5].startswith("conflict")
    assert rows["gamma"][5].startswith("skipped: uncommitted changes")
    # alpha's update was committed on its own; gamma was not touched
    assert (
        git(monorepo, "log", "-1", "--format=%s").stdout.strip()
        == "alpha: update nexus-template v1.0.0 → v1.1.0"
    )
    assert (dirty / "README.md").read_text() == "uncommitted\n"
    assert answers(clean)["_commit"] == "v1.1.0"
    assert answers(dirty)["_commit"] == "v1.0.0"


def _previous_release() -> tuple[str, str] | None:
    """(tag, commit) of the newest release before the one being prepared, from this repository."""
    tags = git(ROOT, "tag", "--list", "v*", "--sort=-v:refname").stdout.split()
    if tags:
        return tags[0], git(ROOT, "rev-list", "-n", "1", tags[0]).stdout.strip()
    # a clone without tags: release commits are named "Release vX.Y.Z: ..."
    line = git(ROOT, "log", "--grep=^Release v", "--format=%H %s", "-n", "1").stdout.strip()
    match = re.match(r"(\w+) Release (v[\d.]+)", line)
    return (match.group(2), match.group(1)) if match else None


def _next_release(previous: str) -> str:
    """The version the working tree is being prepared as: the top of CHANGELOG.md, or, when that one is
    already released, the next patch after `previous`."""
    match = re.search(r"^## (v\d+\.\d+\.\d+)", (ROOT / "CHANGELOG.md").read_text(), re.MULTILINE)
    assert match, "CHANGELOG.md has no release section"
    if match.group(1) != previous:
        return match.group(1)
    major, minor, patch = previous.removeprefix("v").split(".")
    return f"v{major}.{minor}.{int(patch) + 1}"


def test_update_from_the_previous_release_of_this_repository(
    tmp_path: Path, monorepo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    previous = _previous_release()
    if previous is None:
        pytest.skip("this clone has no release tag or release commit (shallow clone?)")
    tag, commit = previous
    upcoming = _next_release(tag)
    template = TemplateHistory(tmp_path / "template")
    template.path.mkdir()
    archive = subprocess.run(["git", "archive", commit], cwd=ROOT, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(template.path)], input=archive, check=True)
    git(template.path, "init", "--quiet", "--initial-branch=main")
    template.release(tag)
    if (template.path / "nexus-ai-platform").is_dir():
        # its services pin that release's library, which no index here has: its wheel, built from the
        # release's source (reproducibly: the hash its lock holds), where the session's wheel is found
        wheel = build_wheel(tmp_path / "previous-wheels", template.path / "nexus-ai-platform")
        locked = re.search(
            r"^nexus-ai-platform==\S+ \\\n\s+--hash=sha256:([0-9a-f]{64})",
            (template.path / "template" / "requirements.lock.jinja").read_text(),
            re.MULTILINE,
        )
        assert locked, "the previous release's lock pins no nexus-ai-platform by its hash"
        assert sha256(wheel) == locked.group(1), (
            f"{wheel.name} rebuilt from {tag}'s source has another hash than its lock: the build backend "
            "(hatchling) changed since; build it with the release's own (its nexus-ai-platform/pyproject.toml)"
        )
        monkeypatch.setenv(
            "PIP_FIND_LINKS", " ".join([str(tmp_path / "previous-wheels"), os.environ["PIP_FIND_LINKS"]])
        )
    service = generate(template.path, monorepo, "legacy-svc", tag)
    before = answers(service)
    kept = make_service_edits(service)
    commit_all(monorepo, "service edits")
    # the current working tree becomes the next release
    git(template.path, "rm", "-r", "--quiet", ".")
    copy_working_tree_files(template.path)
    template.release(upcoming)

    result = update_service(service, run_tests=True)

    assert result.status == "ok", result.detail
    assert result.conflicts == []
    assert result.tests == "passed"
    moved = platform_package(service) != "app.nexus"  # the v0.4.0 migration rewrote the service's imports
    for path, content in kept.items():
        expected = (
            content.replace("from app.nexus import ", "from nexus_platform import ") if moved else content
        )
        assert (service / path).read_text() == expected, f"{path} changed"
    after = answers(service)
    assert after["_commit"] == upcoming
    if "memory_limit_mib" in before:  # the v0.2.0 migration: answer renamed, and derived answers follow
        assert "memory_limit_mib" not in after
        assert after["memory_limit"] == "auto"
    assert (after["base_image"], after["cpu_limit"]) == ("auto", "auto")


def test_the_cli_refuses_bad_data() -> None:
    with pytest.raises(SystemExit, match="--data takes NAME=VALUE"):
        cli(["update", ".", "--data", "no-equals-sign"])


def test_the_cli_says_when_no_service_is_found(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(["update-all", str(tmp_path)]) == 1
    assert "no services" in capsys.readouterr().err
