"""`update --abort` undoes exactly what an update wrote; a fleet run always finishes and never runs twice.

Stories on real template histories: each lost work or stopped a fleet with a traceback before.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from devtools.render import git, update
from nexus_template.cli import main as cli
from nexus_template.updating import exclusive
from tests.edits import PLATFORM_DOCSTRING, edit_file
from tests.histories import TemplateHistory, answers, append_line, commit_all, generate, status


def work_in_progress(monorepo: Path, service: Path) -> dict[str, str]:
    """Uncommitted, staged and untracked work across the monorepo; path -> content, to compare after."""
    append_line(monorepo / "README.md", "an uncommitted line at the root")
    (monorepo / "NOTES.md").write_text("untracked notes\n")
    (monorepo / "services/shared").mkdir()
    (monorepo / "services/shared/lib.py").write_text("SHARED = 1\n")
    append_line(service / "app/service.py", "# an uncommitted edit of the service")
    (service / "app/new_module.py").write_text("NEW = 1\n")
    git(monorepo, "add", str(service / "app/new_module.py"))  # staged, never committed
    return snapshot_of(monorepo)


def snapshot_of(monorepo: Path) -> dict[str, str]:
    return {
        path.relative_to(monorepo).as_posix(): path.read_text()
        for path in monorepo.rglob("*")
        if path.is_file() and ".git" not in path.relative_to(monorepo).parts
    }


def release_a_change(history: TemplateHistory, version: str) -> None:
    history.replace(
        "template/app/__main__.py", PLATFORM_DOCSTRING, f'"""Production entrypoint ({version})."""'
    )
    history.release(version)


def edit_where_the_release_changes(history: TemplateHistory, monorepo: Path, service: Path) -> None:
    """A committed service edit of the lines release v1.1.0 changes: its update conflicts."""
    edit_file(service / "app/__main__.py", (PLATFORM_DOCSTRING, '"""Entrypoint, tuned for our backend."""'))
    commit_all(monorepo, "edit a template-owned file")
    release_a_change(history, "v1.1.0")


@pytest.mark.parametrize("where", ["root", "services", "service"])
def test_abort_where_no_update_is_in_progress_changes_nothing(
    history: TemplateHistory, monorepo: Path, capsys: pytest.CaptureFixture[str], where: str
) -> None:
    service = generate(history.path, monorepo, "alpha", "v1.0.0")
    before = work_in_progress(monorepo, service)
    index = git(monorepo, "diff", "--cached", "--name-only").stdout
    folder = {"root": monorepo, "services": monorepo / "services", "service": service}[where]

    assert cli(["update", "--abort", str(folder)]) == 1

    assert snapshot_of(monorepo) == before
    assert git(monorepo, "diff", "--cached", "--name-only").stdout == index
    (line,) = capsys.readouterr().err.strip().splitlines()
    expected = "no update of" if where == "service" else "is not a service folder"
    assert expected in line


def test_abort_needs_the_service_folder(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli(["update", "--abort"])
    assert exit_.value.code == 2
    assert "--abort needs the service folder" in capsys.readouterr().err


def test_abort_undoes_only_what_the_update_wrote(
    history: TemplateHistory, monorepo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    service = generate(history.path, monorepo, "alpha", "v1.0.0")
    other = generate(history.path, monorepo, "beta", "v1.0.0")
    edit_where_the_release_changes(history, monorepo, service)
    assert cli(["update", str(service), "--no-resolve"]) == 1  # a conflict in _checks.py
    # work done after the update, before backing out of it: none of it is the update's
    append_line(service / "app/service.py", "# written while the update was open")
    (service / "app/scratch.py").write_text("SCRATCH = 1\n")
    append_line(other / "app/service.py", "# another service's work")
    capsys.readouterr()

    assert cli(["update", "--abort", str(service)]) == 0

    assert answers(service)["_commit"] == "v1.0.0"
    assert "tuned for our backend" in (service / "app/__main__.py").read_text()
    assert "<<<<<<<" not in (service / "app/__main__.py").read_text()
    assert (service / "app/service.py").read_text().endswith("# written while the update was open\n")
    assert (service / "app/scratch.py").read_text() == "SCRATCH = 1\n"
    assert (other / "app/service.py").read_text().endswith("# another service's work\n")
    assert sorted(status(monorepo)) == [
        " M services/alpha/app/service.py",
        " M services/beta/app/service.py",
        "?? services/alpha/app/scratch.py",
    ]
    out = capsys.readouterr().out
    assert "the update v1.0.0 → v1.1.0 is undone" in out
    assert "app/__main__.py" in out
    assert "left as they are (not written by the update): app/service.py, app/scratch.py" in out

    # the record is gone with the update: a second abort has nothing to undo
    assert cli(["update", "--abort", str(service)]) == 1


def test_abort_removes_what_the_update_created_and_nothing_untracked(
    history: TemplateHistory, monorepo: Path
) -> None:
    service = generate(history.path, monorepo, "alpha", "v1.0.0")
    history.write("template/docs/runbook.md", "# Runbook\n")
    history.release("v1.1.0")
    assert cli(["update", str(service), "--no-resolve"]) == 0
    assert (service / "docs/runbook.md").is_file()
    (service / "docs/mine.md").write_text("mine\n")

    assert cli(["update", "--abort", str(service)]) == 0

    assert not (service / "docs/runbook.md").exists()
    assert (service / "docs/mine.md").read_text() == "mine\n"
    assert status(monorepo) == ["?? services/alpha/docs/mine.md"]


def test_abort_refuses_a_committed_update(
    history: TemplateHistory, monorepo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    service = generate(history.path, monorepo, "alpha", "v1.0.0")
    release_a_change(history, "v1.1.0")
    assert cli(["update", str(service), "--no-resolve"]) == 0
    commit_all(monorepo, "take v1.1.0")
    append_line(service / "app/service.py", "# later work")
    capsys.readouterr()

    assert cli(["update", "--abort", str(service)]) == 1

    assert "is committed: undo it with `git revert`" in capsys.readouterr().err
    assert answers(service)["_commit"] == "v1.1.0"
    assert status(monorepo) == [" M services/alpha/app/service.py"]


def test_abort_after_a_plain_copier_update_leaves_other_work(
    history: TemplateHistory, monorepo: Path
) -> None:
    service = generate(history.path, monorepo, "alpha", "v1.0.0")
    release_a_change(history, "v1.1.0")
    update(service, conflict="inline")
    assert answers(service)["_commit"] == "v1.1.0"
    (service / "app/notes.py").write_text("NOTES = 1\n")

    assert cli(["update", "--abort", str(service)]) == 0

    assert answers(service)["_commit"] == "v1.0.0"
    assert status(monorepo) == ["?? services/alpha/app/notes.py"]


# --- a fleet always finishes ------------------------------------------------------------------------


@pytest.mark.parametrize("refusal", ["no-identity", "signing"])
def test_a_commit_git_refuses_is_that_service_failure_and_the_fleet_goes_on(
    history: TemplateHistory,
    monorepo: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    refusal: str,
) -> None:
    services = [generate(history.path, monorepo, name, "v1.0.0") for name in ("alpha", "beta")]
    release_a_change(history, "v1.1.0")
    if refusal == "no-identity":  # as on a CI runner: no identity anywhere, and none guessed
        for name in ("user.name", "user.email"):
            git(monorepo, "config", "--unset", name)
        git(monorepo, "config", "user.useConfigOnly", "true")
        monkeypatch.setenv("GIT_CONFIG_GLOBAL", "/dev/null")
        monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
        for variable in ("NAME", "EMAIL"):
            for who in ("AUTHOR", "COMMITTER"):
                monkeypatch.delenv(f"GIT_{who}_{variable}", raising=False)
        monkeypatch.delenv("EMAIL", raising=False)
    else:  # signing asked for, and the signing program fails
        git(monorepo, "config", "commit.gpgsign", "true")
        git(monorepo, "config", "gpg.program", "false")
    head = git(monorepo, "rev-parse", "HEAD").stdout

    code = cli(["update-all", str(monorepo / "services"), "--commit", "--no-resolve", "--json"])

    assert code == 1
    report = json.loads(capsys.readouterr().out)
    assert [result["status"] for result in report["services"]] == ["failed", "failed"]
    for result in report["services"]:
        assert result["detail"].startswith("updated but not committed, git commit failed: ")
        assert result["committed"] is False
    assert git(monorepo, "rev-parse", "HEAD").stdout == head
    assert git(monorepo, "diff", "--cached", "--name-only").stdout == ""  # nothing left staged
    assert [answers(service)["_commit"] for service in services] == ["v1.1.0", "v1.1.0"]
    # the updates stay in the folders, and each can be backed out of
    assert cli(["update", "--abort", str(services[0])]) == 0
    assert answers(services[0])["_commit"] == "v1.0.0"


def test_a_second_run_on_the_same_repository_refuses_at_start(
    history: TemplateHistory, monorepo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    service = generate(history.path, monorepo, "alpha", "v1.0.0")
    release_a_change(history, "v1.1.0")

    with exclusive(monorepo):  # a run in progress
        code = cli(["update-all", str(monorepo / "services"), "--commit", "--no-resolve"])
        single = cli(["update", str(service), "--no-resolve"])
        planned = cli(["update", str(service), "--no-resolve", "--plan"])

    assert (code, single, planned) == (1, 1, 0)  # a plan writes nothing: it needs no lock
    lines = capsys.readouterr().err.strip().splitlines()
    assert sum("another nexus-template update is writing into this repository" in line for line in lines) == 2
    assert answers(service)["_commit"] == "v1.0.0"
    assert status(monorepo) == []
    assert cli(["update-all", str(monorepo / "services"), "--commit", "--no-resolve"]) == 0


# --- the record is trusted only while it describes the work tree -----------------------------------


def test_abort_leaves_a_file_written_by_the_update_and_changed_since(
    history: TemplateHistory, monorepo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    service = generate(history.path, monorepo, "alpha", "v1.0.0")
    history.write("template/.env", "# local settings (ignored by git)\n")  # a release starts generating .env
    git(history.path, "add", "--force", "template/.env")  # the template repository ignores .env too
    history.release("v1.1.0")
    assert cli(["update", str(service), "--no-resolve"]) == 0
    append_line(service / ".env", "OPENAI_API_KEY=sk-typed-after-the-update")  # ignored: git keeps no copy
    capsys.readouterr()

    assert cli(["update", "--abort", str(service)]) == 1  # not all of the update is undone: said, exit 1

    assert (service / ".env").read_text().endswith("OPENAI_API_KEY=sk-typed-after-the-update\n")
    assert answers(service)["_commit"] == "v1.0.0"
    assert "written by the update but changed since, left as they are: .env" in capsys.readouterr().err


def test_a_record_left_by_an_update_backed_out_with_git_is_not_used(
    history: TemplateHistory, monorepo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    service = generate(history.path, monorepo, "alpha", "v1.0.0")
    release_a_change(history, "v1.1.0")
    assert cli(["update", str(service), "--no-resolve"]) == 0  # leaves a record
    git(monorepo, "restore", "--source=HEAD", "--staged", "--worktree", "--", "services/alpha")
    edit_file(service / "app/__main__.py", (PLATFORM_DOCSTRING, '"""Entrypoint, committed after."""'))
    commit_all(monorepo, "alpha: its own docstring")
    capsys.readouterr()

    assert cli(["update", "--abort", str(service)]) == 1

    assert "no update of" in capsys.readouterr().err
    assert "Entrypoint, committed after." in (service / "app/__main__.py").read_text()
    assert status(monorepo) == []


def test_each_worktree_has_its_own_record(
    history: TemplateHistory, monorepo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    service = generate(history.path, monorepo, "alpha", "v1.0.0")
    git(monorepo, "checkout", "--quiet", "-b", "feature")
    append_line(service / "app/healthcheck.py", "# the feature branch's edit")
    commit_all(monorepo, "feature edit")
    git(monorepo, "checkout", "--quiet", "main")
    git(monorepo, "worktree", "add", "--quiet", str(tmp_path / "feature"), "feature")
    release_a_change(history, "v1.1.0")
    assert cli(["update", str(service), "--no-resolve"]) == 0
    assert cli(["update", str(tmp_path / "feature/services/alpha"), "--no-resolve"]) == 0
    capsys.readouterr()

    assert cli(["update", "--abort", str(service)]) == 0

    assert "the feature branch's edit" not in (service / "app/healthcheck.py").read_text()
    assert answers(service)["_commit"] == "v1.0.0"
    assert status(monorepo) == []
    assert answers(tmp_path / "feature/services/alpha")["_commit"] == "v1.1.0"  # the other worktree's own


def test_files_whose_changes_git_hides_stop_the_update(
    history: TemplateHistory, monorepo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    service = generate(history.path, monorepo, "alpha", "v1.0.0")
    append_line(service / "app/__main__.py", "# a local-only tweak")
    git(monorepo, "update-index", "--skip-worktree", "services/alpha/app/__main__.py")
    release_a_change(history, "v1.1.0")

    code = cli(["update-all", str(monorepo / "services"), "--commit", "--no-resolve", "--json"])

    (result,) = json.loads(capsys.readouterr().out)["services"]
    assert (code, result["status"]) == (1, "skipped")
    assert "skip-worktree or assume-unchanged: app/__main__.py" in result["detail"]
    assert (service / "app/__main__.py").read_text().endswith("# a local-only tweak\n")
    assert answers(service)["_commit"] == "v1.0.0"


def test_abort_after_part_of_an_open_update_was_committed_refuses(
    history: TemplateHistory, monorepo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    service = generate(history.path, monorepo, "alpha", "v1.0.0")
    edit_where_the_release_changes(history, monorepo, service)
    history.append("template/app/healthcheck.py.jinja", "\nIN_V1_2 = True\n")
    history.release("v1.2.0")
    assert cli(["update", str(service), "--no-resolve"]) == 1  # a conflict in _checks.py
    (service / "app/__main__.py").write_text('"""Half resolved: precious."""\n')
    git(monorepo, "add", "services/alpha/app/healthcheck.py")
    git(monorepo, "commit", "--quiet", "-m", "part of the update, committed on its own")
    capsys.readouterr()

    assert cli(["update", "--abort", str(service)]) == 1

    assert "cannot tell its files from yours any more" in capsys.readouterr().err
    assert (service / "app/__main__.py").read_text() == '"""Half resolved: precious."""\n'
    assert answers(service)["_commit"] == "v1.2.0"


def test_abort_after_a_plain_copier_update_keeps_a_conflict_resolved_by_hand(
    history: TemplateHistory, monorepo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    service = generate(history.path, monorepo, "alpha", "v1.0.0")
    edit_where_the_release_changes(history, monorepo, service)
    update(service, conflict="inline")
    (service / "app/__main__.py").write_text('"""Resolved by hand."""\n')
    capsys.readouterr()

    assert cli(["update", "--abort", str(service)]) == 1

    assert (service / "app/__main__.py").read_text() == '"""Resolved by hand."""\n'
    assert answers(service)["_commit"] == "v1.0.0"
    err = capsys.readouterr().err
    assert "changed since, left as they are: app/__main__.py" in err
    assert "git restore --source=HEAD --staged --worktree -- FILE" in err
