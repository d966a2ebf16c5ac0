"""Update stories about answers: a change nobody asked for is reported, a hand edit is validated by the
template's rules and then taken, and an unknown `--data` name is refused before anything is written.

They drive `nexus-template` through its CLI on real template histories and look at files, the --json
report and git.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nexus_template.cli import main as cli
from tests.histories import TemplateHistory, answers, commit_all, generate, status

RENAME_MIGRATION = '''"""v1.1.0: the answer etcd_registration is now registration."""

import sys
from pathlib import Path

from answers import rename_answer

if rename_answer(Path(sys.argv[1]), "etcd_registration", "registration"):
    print("migration v1.1.0: etcd_registration -> registration", file=sys.stderr)
'''
RENAME_MIGRATION_ENTRY = """  - version: v1.1.0
    when: "{{ _stage == 'before' }}"
    command:
      - "{{ _copier_python }}"
      - "{{ _copier_conf.src_path }}/migrations/v1_1_0.py"
      - "{{ _copier_conf.answers_file }}"
"""


def update_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict]:
    """Run the CLI with --json; (exit code, the one service's result)."""
    code = cli([*args, "--json"])
    (result,) = json.loads(capsys.readouterr().out)["services"]
    return code, result


def rename_registration_question(history: TemplateHistory) -> None:
    """A release renames the question etcd_registration to registration: copier.yml, every template file
    that uses it, and the files named after it."""
    for path in [history.path / "copier.yml", *(history.path / "template").rglob("*")]:
        if path.is_file() and "etcd_registration" in (text := path.read_text()):
            path.write_text(text.replace("etcd_registration", "registration"))
    for path in sorted((history.path / "template").rglob("*etcd_registration*")):
        relative = path.relative_to(history.path).as_posix()
        history.rename(relative, relative.replace("etcd_registration", "registration"))


def set_answer(service: Path, name: str, value: str) -> None:
    """A service author's hand edit of one line of the answers file."""
    answers_file = service / ".copier-answers.yml"
    lines = answers_file.read_text().splitlines(keepends=True)
    (index,) = [number for number, line in enumerate(lines) if line.startswith(f"{name}: ")]
    lines[index] = f"{name}: {value}\n"
    answers_file.write_text("".join(lines))


# --- a removed migration never silently changes an answer --------------------------------------------


@pytest.fixture
def renamed_then_migration_dropped(history: TemplateHistory) -> TemplateHistory:
    """v1.1.0 renames etcd_registration to registration with a migration; v1.2.0 drops that migration."""
    rename_registration_question(history)
    history.write("migrations/v1_1_0.py", RENAME_MIGRATION)
    history.replace("copier.yml", "_migrations:\n", "_migrations:\n" + RENAME_MIGRATION_ENTRY)
    history.release("v1.1.0")
    history.replace("copier.yml", RENAME_MIGRATION_ENTRY, "")
    history.remove("migrations/v1_1_0.py")
    history.release("v1.2.0")
    return history


def test_an_answer_a_migration_renames_keeps_its_value(
    renamed_then_migration_dropped: TemplateHistory, monorepo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    service = generate(
        renamed_then_migration_dropped.path, monorepo, "greeter", "v1.0.0", etcd_registration=True
    )

    code, result = update_json(capsys, "update", str(service), "--vcs-ref", "v1.1.0", "--no-resolve")

    assert (code, result["status"]) == (0, "ok"), result["detail"]
    assert answers(service)["registration"] is True
    assert "etcd_registration" not in answers(service)
    assert "\n    registration=True,\n" in (service / "app/main.py").read_text()
    # the migration's change is in the report, though no person has to act on it
    assert result["answers"]["registration"] == [None, True]


def test_skipping_the_release_whose_migration_was_removed_reports_the_dropped_answer(
    renamed_then_migration_dropped: TemplateHistory, monorepo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    service = generate(
        renamed_then_migration_dropped.path, monorepo, "greeter", "v1.0.0", etcd_registration=True
    )

    code, result = update_json(capsys, "update", str(service), "--no-resolve")

    assert (code, result["status"], result["after"]) == (1, "review", "v1.2.0")
    (note,) = [note for note in result["notes"] if "etcd_registration" in note]
    # it names the answer, its value, what became of it, and what to check
    assert "etcd_registration: True was dropped" in note
    assert "v1.2.0 has no such question" in note
    assert "(new questions that took their defaults: registration: False)" in note
    assert "give it the value (--data registration=true)" in note
    assert "a migration is missing" in note
    assert result["answers"]["etcd_registration"] == [True, None]


def test_a_new_question_that_takes_its_default_is_not_a_change_to_review(
    history: TemplateHistory, monorepo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    service = generate(history.path, monorepo, "greeter", "v1.0.0")
    history.append("copier.yml", "\nnew_question:\n  type: str\n  help: Added in v1.1.0\n  default: fresh\n")
    history.release("v1.1.0")

    code, result = update_json(capsys, "update", str(service), "--no-resolve")

    assert (code, result["status"], result["notes"]) == (0, "ok", [])
    assert result["answers"] == {"new_question": [None, "fresh"]}


def test_an_answer_the_release_no_longer_accepts_is_reported_not_silently_reset(
    history: TemplateHistory, monorepo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    service = generate(history.path, monorepo, "greeter", "v1.0.0", python_version="3.12")
    history.replace("copier.yml", '    - "3.12"\n', "")  # v1.1.0 drops Python 3.12
    history.release("v1.1.0")

    code, result = update_json(capsys, "update", str(service), "--no-resolve")

    assert (code, result["status"]) == (1, "review")
    (note,) = result["notes"]
    assert note.startswith("answer python_version: '3.12' → '3.11' was changed by v1.1.0")
    assert "--data python_version=" in note


def test_data_for_a_question_the_release_does_not_ask_with_these_answers_is_reported(
    history: TemplateHistory, monorepo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    service = generate(history.path, monorepo, "greeter", "v1.0.0")  # gpu: false, so no gpu_count

    code, result = update_json(capsys, "update", str(service), "--no-resolve", "--data", "gpu_count=2")

    assert (code, result["status"]) == (1, "review")
    (note,) = result["notes"]
    assert note.startswith("--data gpu_count=2 was not applied")
    assert "gpu_count" not in answers(service)


# --- hand-edited answers --------------------------------------------------------------------------


def test_a_hand_edited_answer_that_does_not_validate_stops_the_service(
    history: TemplateHistory, monorepo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    service = generate(history.path, monorepo, "greeter", "v1.0.0")
    set_answer(service, "gpu", "maybe")
    commit_all(monorepo, "gpu maybe")
    history.append("template/app/__main__.py", "\nIN_V2 = True\n")
    history.release("v1.1.0")

    code, result = update_json(capsys, "update", str(service), "--no-resolve")

    assert (code, result["status"]) == (1, "failed")
    assert result["detail"] == (
        "answer gpu in .copier-answers.yml: 'maybe' is a str, not a bool: "
        "fix it and commit, or give --data gpu=VALUE"
    )
    assert answers(service)["gpu"] == "maybe"
    assert answers(service)["_commit"] == "v1.0.0"
    assert "IN_V2" not in (service / "app/__main__.py").read_text()
    assert status(monorepo) == []


def test_a_hand_edited_answer_that_breaks_a_template_rule_names_the_rule(
    history: TemplateHistory, monorepo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    service = generate(history.path, monorepo, "greeter", "v1.0.0")
    set_answer(service, "port", "80")
    commit_all(monorepo, "port 80")
    history.release("v1.1.0")

    code, result = update_json(capsys, "update", str(service), "--no-resolve")

    assert (code, result["status"]) == (1, "failed")
    # extensions/rules.py's port rule, as `copier copy` words it
    assert result["detail"].startswith(
        "answer port in .copier-answers.yml: Validation error for question 'port': must be a port number"
    )
    assert status(monorepo) == []


@pytest.mark.parametrize("release", [True, False], ids=["with-a-release", "up-to-date"])
def test_a_hand_edited_answer_that_validates_is_brought_into_the_files(
    history: TemplateHistory, monorepo: Path, capsys: pytest.CaptureFixture[str], release: bool
) -> None:
    service = generate(history.path, monorepo, "greeter", "v1.0.0")
    assert "EXPOSE 9000\n" in (service / "Dockerfile").read_text()
    set_answer(service, "port", "9200")
    commit_all(monorepo, "port 9200")
    if release:
        history.append("template/app/__main__.py", "\nIN_V2 = True\n")
        history.release("v1.1.0")

    code, result = update_json(capsys, "update", str(service), "--no-resolve")

    assert (code, result["status"]) == (0, "ok"), result["detail"]
    assert "EXPOSE 9200\n" in (service / "Dockerfile").read_text()
    assert answers(service)["port"] == 9200
    assert result["answers"]["port"] == [9000, 9200]
    assert result["after"] == ("v1.1.0" if release else "v1.0.0")


# --- --data names ---------------------------------------------------------------------------------


def test_data_with_a_name_the_template_does_not_ask_is_refused(
    history: TemplateHistory, monorepo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    service = generate(history.path, monorepo, "greeter", "v1.0.0")
    history.append("template/app/__main__.py", "\nIN_V2 = True\n")
    history.release("v1.1.0")

    code, result = update_json(
        capsys, "update", str(service), "--no-resolve", "--data", "python-version=3.12"
    )

    assert (code, result["status"]) == (1, "failed")
    detail = result["detail"]
    assert detail.startswith("--data python-version: v1.1.0 asks no such question; valid names: ")
    assert "python_version" in detail.split("valid names: ")[1].split(", ")
    assert answers(service)["_commit"] == "v1.0.0"
    assert status(monorepo) == []


def test_an_answer_changed_with_data_then_committed_merges_cleanly_in_the_next_release(
    history: TemplateHistory, monorepo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An update with --data at the same version leaves a version of the answers file that looks like a
    hand edit in the history; taken again as one by the next release, it changes nothing twice."""
    service = generate(history.path, monorepo, "greeter", "v1.0.0")
    code, _ = update_json(capsys, "update", str(service), "--no-resolve", "--data", "port=9100")
    assert code == 0
    commit_all(monorepo, "port 9100")
    history.append("template/app/__main__.py", "\nIN_V2 = True\n")
    history.release("v1.1.0")

    code, result = update_json(capsys, "update", str(service), "--no-resolve")

    assert (code, result["status"], result["conflicts"]) == (0, "ok", []), result["detail"]
    assert (service / "Dockerfile").read_text().count("9100") >= 1
    assert "9000" not in (service / "Dockerfile").read_text()
    assert "IN_V2 = True" in (service / "app/__main__.py").read_text()


def test_following_the_advice_for_a_dropped_answer_settles_it(
    renamed_then_migration_dropped: TemplateHistory, monorepo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    service = generate(
        renamed_then_migration_dropped.path, monorepo, "greeter", "v1.0.0", etcd_registration=True
    )

    code, result = update_json(capsys, "update", str(service), "--no-resolve", "--data", "registration=true")

    assert (code, result["status"], result["notes"]) == (0, "ok", [])
    assert answers(service)["registration"] is True
    assert "\n    registration=True,\n" in (service / "app/main.py").read_text()


def test_an_answer_a_release_asks_only_under_a_condition_is_not_dropped_silently(
    history: TemplateHistory, monorepo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    service = generate(history.path, monorepo, "greeter", "v1.0.0")
    assert answers(service)["kubernetes"] is True
    history.replace("copier.yml", "kubernetes:\n  when: *a_service\n", 'kubernetes:\n  when: "{{ gpu }}"\n')
    history.release("v1.1.0")

    code, result = update_json(capsys, "update", str(service), "--no-resolve")

    assert (code, result["status"]) == (1, "review")
    (note,) = [
        note for note in result["notes"] if note.startswith("answer kubernetes: True is no longer recorded")
    ]
    assert "only under a condition these answers do not meet" in note


@pytest.mark.parametrize("value", ["nein", "flase", "2"])
def test_data_that_is_no_value_of_the_question_type_is_refused(
    history: TemplateHistory, monorepo: Path, capsys: pytest.CaptureFixture[str], value: str
) -> None:
    service = generate(history.path, monorepo, "greeter", "v1.0.0")
    history.append("template/app/healthcheck.py.jinja", "\nIN_V1_1 = True\n")
    history.release("v1.1.0")

    code, result = update_json(capsys, "update", str(service), "--no-resolve", "--data", f"gpu={value}")

    assert (code, result["status"]) == (1, "failed")
    assert result["detail"].startswith(f"--data gpu={value}: ")
    assert answers(service)["gpu"] is False
    assert status(monorepo) == []
