"""Update stories about what the isolated copy holds and where an update may write (issue 26).

The copy is the service as committed, whatever its .gitattributes say; an update never writes over a file
the service has (tracked, ignored or untracked) nor through a symlink, and says what it did not write.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from devtools.render import git, render
from nexus_template.cli import main as cli
from nexus_template.updating._isolated import Snapshot, apply_to
from tests.histories import TemplateHistory, append_line, commit_all, generate, status

K8S = "template/{% if kubernetes %}deploy{% endif %}/kubernetes"
RELEASE_LINE = "# added by v1.1.0"


def update_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict]:
    """Run the CLI with --json and --no-resolve; (exit code, report)."""
    code = cli([*args, "--json", "--no-resolve"])
    return code, json.loads(capsys.readouterr().out)


def lines_outside(monorepo: Path, service: Path) -> list[str]:
    """`git status` lines outside the service folder (an update must leave them alone)."""
    prefix = service.relative_to(monorepo).as_posix() + "/"
    return [line for line in status(monorepo) if not line[3:].startswith(prefix)]


# --- 1. the isolated copy is the service as committed, whatever .gitattributes says ------------------


def test_export_ignore_neither_brings_seeds_back_over_the_tests_nor_skips_the_readme_change(
    history: TemplateHistory, monorepo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    service = generate(history.path, monorepo, "greeter", "v1.0.0")
    (service / ".gitattributes").write_text("tests/** export-ignore\nREADME.md export-ignore\n")
    append_line(service / "tests/test_service.py", "# the greeting team's own test")
    append_line(service / "tests/conftest.py", "# the greeting team's own fixture")
    ours = {name: (service / "tests" / name).read_text() for name in ("test_service.py", "conftest.py")}
    commit_all(monorepo, "the service keeps its tests out of archives")
    history.append("template/README.md.jinja", f"\n{RELEASE_LINE}\n")
    history.release("v1.1.0")

    code, report = update_json(capsys, "update", str(service))

    (result,) = report["services"]
    assert (code, result["status"], result["after"]) == (0, "ok", "v1.1.0"), result["detail"]
    assert {name: (service / "tests" / name).read_text() for name in ours} == ours
    assert RELEASE_LINE in (service / "README.md").read_text()
    assert "README.md" in result["changed"]


def test_export_subst_text_stays_as_committed(
    history: TemplateHistory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """In a service that is its own repository (git substitutes only when it archives a commit)."""
    service = render(history.path, tmp_path / "greeter", {"service_name": "greeter"}, vcs_ref="v1.0.0")
    git(service, "init", "--quiet", "--initial-branch=main")
    (service / ".gitattributes").write_text(".env.example export-subst\n")
    append_line(service / ".env.example", "BUILT_FROM=$Format:%H$")
    commit_all(service, "the service stamps its archives")
    history.replace(
        "template/.env.example.jinja", "# --- Logging ---", "# --- Logging (changed in v1.1.0) ---"
    )
    history.release("v1.1.0")

    code, report = update_json(capsys, "update", str(service))

    (result,) = report["services"]
    assert (code, result["status"]) == (0, "ok"), result["detail"]
    merged = (service / ".env.example").read_text()
    assert "# --- Logging (changed in v1.1.0) ---" in merged
    assert "BUILT_FROM=$Format:%H$\n" in merged


def test_a_filter_of_the_monorepo_neither_fails_the_update_nor_rewrites_the_file(
    history: TemplateHistory, monorepo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A decrypting filter (git-crypt, sops) whose key this machine lacks: the committed form is what the
    update works on, and a file the release does not change is not written."""
    service = generate(history.path, monorepo, "greeter", "v1.0.0")
    (service / ".gitattributes").write_text("secrets.env filter=vault\n")
    git(monorepo, "config", "filter.vault.clean", "sed s/hunter2/@@SECRET@@/")
    git(monorepo, "config", "filter.vault.smudge", "sed s/@@SECRET@@/hunter2/")
    (service / "secrets.env").write_text("PASSWORD=hunter2\n")
    commit_all(monorepo, "the service's secrets, encrypted in git")
    assert (
        git(monorepo, "cat-file", "-p", "HEAD:services/greeter/secrets.env").stdout == "PASSWORD=@@SECRET@@\n"
    )
    git(monorepo, "config", "filter.vault.smudge", "false")  # the key is not on this machine
    git(monorepo, "config", "filter.vault.required", "true")
    history.append("template/README.md.jinja", f"\n{RELEASE_LINE}\n")
    history.release("v1.1.0")

    code, report = update_json(capsys, "update", str(service))

    (result,) = report["services"]
    assert (code, result["status"]) == (0, "ok"), result["detail"]
    assert (service / "secrets.env").read_text() == "PASSWORD=hunter2\n"
    assert "secrets.env" not in result["changed"]
    assert RELEASE_LINE in (service / "README.md").read_text()


def test_a_file_checked_out_with_crlf_keeps_its_line_endings(
    history: TemplateHistory, monorepo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`text eol=crlf`: git holds LF and checks out CRLF; the merged file is written back as CRLF."""
    service = generate(history.path, monorepo, "greeter", "v1.0.0")
    (service / ".gitattributes").write_text(".env.example text eol=crlf\n")
    append_line(service / ".env.example", "GREETING=hello")
    commit_all(monorepo, "Windows colleagues")
    env = service / ".env.example"
    env.unlink()
    git(monorepo, "checkout", "--", "services/greeter/.env.example")
    assert env.read_bytes().count(b"\r\n") == env.read_bytes().count(b"\n")
    history.replace(
        "template/.env.example.jinja", "# --- Logging ---", "# --- Logging (changed in v1.1.0) ---"
    )
    history.release("v1.1.0")

    code, report = update_json(capsys, "update", str(service))

    (result,) = report["services"]
    assert (code, result["status"]) == (0, "ok"), result["detail"]
    merged = env.read_bytes()
    assert re.search(rb"^# --- Logging \(changed in v1\.1\.0\) -+\r$", merged, re.MULTILINE)
    assert b"GREETING=hello\r\n" in merged
    assert merged.count(b"\n") == merged.count(b"\r\n")


# --- 2. no write over a file the service has ----------------------------------------------------------

LOCAL_ENV = "OPENAI_API_KEY=sk-the-developers-own-key\n"
RELEASE_ENV = "# Managed by nexus-template\nOPENAI_API_KEY=\n"


@pytest.mark.parametrize("command", ["update", "plan", "update-all"])
def test_a_release_generating_an_ignored_file_the_service_has_keeps_it(
    history: TemplateHistory, monorepo: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    service = generate(history.path, monorepo, "greeter", "v1.0.0")
    (service / ".env").write_text(LOCAL_ENV)  # ignored by the service's .gitignore
    assert status(monorepo) == []
    history.write("template/.env.jinja", RELEASE_ENV)
    history.release("v1.1.0")

    args = {
        "update": ["update", str(service)],
        "plan": ["update", str(service), "--plan"],
        "update-all": ["update-all", str(monorepo / "services")],
    }[command]
    code, report = update_json(capsys, *args)

    (result,) = report["services"]
    assert (code, result["status"]) == (1, "review"), result["detail"]
    assert (service / ".env").read_text() == LOCAL_ENV
    assert ".env" not in result["added"]
    (note,) = result["notes"]
    assert note.startswith(".env: ")
    assert ".env.template-new" in note
    if command == "plan":
        assert not (service / ".env.template-new").exists()
        assert status(monorepo) == []
    else:
        assert (service / ".env.template-new").read_text() == RELEASE_ENV
        assert ".env.template-new" in result["added"]


def test_a_release_generating_a_file_excluded_locally_keeps_it(
    history: TemplateHistory, monorepo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An untracked local override the developer hides with .git/info/exclude."""
    service = generate(history.path, monorepo, "greeter", "v1.0.0")
    override = service / "docker-compose.greeter.local.yml"
    override.write_text("services: {greeter: {ports: ['9999:9000']}}\n")
    (monorepo / ".git/info/exclude").write_text("*.local.yml\n")
    history.write("template/docker-compose.{{ service_name }}.local.yml.jinja", "services: {}\n")
    history.release("v1.1.0")

    code, report = update_json(capsys, "update", str(service))

    (result,) = report["services"]
    assert (code, result["status"]) == (1, "review"), result["detail"]
    assert override.read_text() == "services: {greeter: {ports: ['9999:9000']}}\n"
    assert (service / "docker-compose.greeter.local.yml.template-new").read_text() == "services: {}\n"
    (note,) = result["notes"]
    assert note.startswith("docker-compose.greeter.local.yml: ")


def test_a_release_generating_a_file_the_service_has_identically_says_nothing(
    history: TemplateHistory, monorepo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    service = generate(history.path, monorepo, "greeter", "v1.0.0")
    (service / ".env").write_text(RELEASE_ENV)
    history.write("template/.env.jinja", RELEASE_ENV)
    history.release("v1.1.0")

    code, report = update_json(capsys, "update", str(service))

    (result,) = report["services"]
    assert (code, result["status"], result["notes"]) == (0, "ok", []), result["detail"]
    assert ".env" not in result["added"]
    assert not (service / ".env.template-new").exists()


def test_apply_to_writes_nothing_when_one_write_would_land_on_a_file_it_did_not_expect(
    tmp_path: Path,
) -> None:
    """The last line of defence, below the detection the stories above go through."""
    service = tmp_path / "greeter"
    (service / "app").mkdir(parents=True)
    (service / "app/service.py").write_text("OURS = 1\n")
    (service / ".env").write_text(LOCAL_ENV)
    before = Snapshot({"app/service.py": b"OURS = 1\n"}, {"app/service.py": 0o100644})
    after = Snapshot(
        {"app/service.py": b"OURS = 2\n", ".env": RELEASE_ENV.encode()},
        {"app/service.py": 0o100644, ".env": 0o100644},
    )

    with pytest.raises(ValueError, match=r"^\.env: not written"):
        apply_to(service, before, after)

    assert (service / "app/service.py").read_text() == "OURS = 1\n"
    assert (service / ".env").read_text() == LOCAL_ENV


# --- 3. symlinks --------------------------------------------------------------------------------------


def test_a_template_file_the_service_replaced_by_a_symlink_gets_the_release_diff(
    history: TemplateHistory, monorepo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    service = generate(history.path, monorepo, "greeter", "v1.0.0")
    shared = monorepo / "shared/dockerignore"
    shared.parent.mkdir()
    shared.write_text("# the platform's own build context rules\n.git\n")
    (service / ".dockerignore").unlink()
    (service / ".dockerignore").symlink_to("../../shared/dockerignore")
    commit_all(monorepo, "one .dockerignore for every service")
    history.append("template/.dockerignore", "requirements.lock.tmp\n")
    history.release("v1.1.0")

    code, report = update_json(capsys, "update", str(service))

    (result,) = report["services"]
    assert (code, result["status"]) == (1, "review"), result["detail"]
    assert shared.read_text() == "# the platform's own build context rules\n.git\n"
    assert os.readlink(service / ".dockerignore") == "../../shared/dockerignore"
    (note,) = result["notes"]
    assert note.startswith(".dockerignore: ")
    assert "\n+requirements.lock.tmp\n" in note
    assert lines_outside(monorepo, service) == []


@pytest.mark.parametrize("target", ["shared-k8s", "other-service"])
def test_a_symlinked_folder_is_not_written_through_and_gets_the_release_diff(
    history: TemplateHistory, monorepo: Path, capsys: pytest.CaptureFixture[str], target: str
) -> None:
    service = generate(history.path, monorepo, "greeter", "v1.0.0")
    if target == "shared-k8s":
        (service / "deploy/kubernetes").rename(monorepo / "shared-k8s")
        (service / "deploy/kubernetes").symlink_to("../../../shared-k8s")
    else:
        generate(history.path, monorepo, "alpha", "v1.0.0")
        git(monorepo, "rm", "-r", "--quiet", "services/greeter/deploy/kubernetes")
        (service / "deploy").mkdir()
        (service / "deploy/kubernetes").symlink_to("../../alpha/deploy/kubernetes")
    commit_all(monorepo, "one set of manifests")
    linked = (service / "deploy/kubernetes").resolve()
    behind_the_link = {path.name: path.read_text() for path in linked.iterdir()}
    history.append(f"{K8S}/service.yaml.jinja", f"{RELEASE_LINE}\n")
    history.release("v1.1.0")

    code, report = update_json(capsys, "update", str(service))

    (result,) = report["services"]
    assert (code, result["status"], result["after"]) == (1, "review", "v1.1.0"), result["detail"]
    assert {path.name: path.read_text() for path in linked.iterdir()} == behind_the_link
    assert (service / "deploy/kubernetes").is_symlink()
    (note,) = result["notes"]
    assert note.startswith("deploy/kubernetes/service.yaml: ")
    assert f"\n+{RELEASE_LINE}\n" in note
    assert lines_outside(monorepo, service) == []
