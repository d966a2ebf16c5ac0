"""Update stories about where a service comes from and what the updater advises: the release a service
counts against (copier's URL shortcuts, a service made between releases), seeds the service deleted on
purpose, and "renamed to" advice only for a file genuinely like the removed one.

They drive `nexus-template` through its CLI and look only at files, exit codes, the --json report and git.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from plumbum import local

from devtools.render import render
from nexus_template.cli import main as cli
from nexus_template.updating._guard import MIN_RENAME_SIMILARITY, renamed_to
from nexus_template.updating._sources import template_url
from tests.histories import TemplateHistory, answers, append_line, commit_all, generate, status

K8S = "template/{% if kubernetes %}deploy{% endif %}/kubernetes"
PDB = """\
# Managed by nexus-template: `copier update` replaces this file.
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ service_name }}
spec:
  minAvailable: 1
  selector:
    matchLabels:
      app.kubernetes.io/name: {{ service_name }}
"""


def update_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict]:
    """Run the CLI with --json; (exit code, the one service's result)."""
    code = cli([*args, "--json"])
    (result,) = json.loads(capsys.readouterr().out)["services"]
    return code, result


# --- advice: "renamed to" only for a file genuinely like the removed one ------------------------------


def test_an_edited_file_the_release_removes_is_not_called_renamed_to_an_unrelated_new_file(
    history: TemplateHistory, monorepo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    service = generate(history.path, monorepo, "greeter", "v1.0.0")
    append_line(service / "app/healthcheck.py", "# tuned by the greeting team")
    kept = (service / "app/healthcheck.py").read_text()
    commit_all(monorepo, "service edits")
    history.remove("template/app/healthcheck.py.jinja")
    history.write(f"{K8S}/pdb.yaml.jinja", PDB)  # unrelated, though quick_ratio() puts it at 0.6
    history.release("v1.1.0")

    code, result = update_json(capsys, "update", str(service), "--no-resolve")

    assert (code, result["status"]) == (1, "review"), result["detail"]
    assert (service / "app/healthcheck.py").read_text() == kept
    assert (service / "deploy/kubernetes/pdb.yaml").is_file()
    (message,) = result["kept"]
    assert message.startswith("app/healthcheck.py: removed by v1.1.0 but edited here")
    assert "renamed" not in message


@pytest.mark.parametrize(
    ("old", "new", "renamed"),
    [
        # 50 of 100 characters kept: a similarity of exactly 0.5, still a rename
        ("x" * 50 + "y" * 50, "x" * 50 + "z" * 50, True),
        ("x" * 49 + "y" * 51, "x" * 49 + "z" * 51, False),
        ("x" * 100, "", False),
    ],
    ids=["half-kept", "less-than-half-kept", "emptied"],
)
def test_a_rename_keeps_at_least_half_of_the_content(old: str, new: str, renamed: bool) -> None:
    assert MIN_RENAME_SIMILARITY == 0.5
    expected = "app/new.py" if renamed else None
    assert renamed_to(old.encode(), {"app/new.py": new.encode()}, "app/old.py") == expected


def test_a_big_file_is_compared_by_its_real_similarity_within_a_second() -> None:
    lines = [f"package-{number}==1.{number}.0 --hash=sha256:{number:064x}\n" for number in range(1500)]
    lock = "".join(lines).encode()  # 150 kB: by characters, ratio() alone took 3 to 5 s here
    reordered = "".join(lines[::-1]).encode()  # the same characters, so quick_ratio() says 1.0
    began = time.monotonic()

    assert renamed_to(lock, {"requirements.lock": lock + b"extra==1.0\n"}, "old.lock") == "requirements.lock"
    assert renamed_to(lock, {"requirements.lock": reordered}, "old.lock") is None
    assert time.monotonic() - began < 2.5  # 0.1 s here (the character-by-character ratio: 3 to 5 s)


# --- deleted on purpose stays deleted ----------------------------------------------------------------


def test_seeds_the_service_deleted_stay_deleted_and_a_seed_a_release_adds_is_created(
    history: TemplateHistory, monorepo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    service = generate(history.path, monorepo, "greeter", "v1.0.0")
    deleted = ["image/build.sh", "docker-compose.greeter.override.yml", ".github/workflows/service.yml"]
    for relative in deleted:
        (service / relative).unlink()
    commit_all(monorepo, "greeter builds its image without a script, has no override and no own workflow")
    history.write("template/image/entrypoint.sh", "#!/bin/sh\nexec python -m app\n")
    history.replace("copier.yml", "  - image/build.sh\n", "  - image/build.sh\n  - image/entrypoint.sh\n")
    history.remove("template/app/_legacy.py")
    history.release("v1.1.0")

    code, result = update_json(capsys, "update", str(service), "--no-resolve")

    assert (code, result["status"], result["after"]) == (0, "ok", "v1.1.0"), result["detail"]
    for relative in deleted:
        assert not (service / relative).exists(), relative
    assert result["added"] == ["image/entrypoint.sh"]
    assert (service / "image/entrypoint.sh").read_text() == "#!/bin/sh\nexec python -m app\n"
    assert not (service / "app/_legacy.py").exists()


# --- the release a service counts against --------------------------------------------------------------


def test_copier_shortcuts_are_expanded_as_copier_expands_them() -> None:
    assert template_url("gh:acme/nexus-template") == "https://github.com/acme/nexus-template.git"
    assert (
        template_url("gl:acme/platform/nexus-template")
        == "https://gitlab.com/acme/platform/nexus-template.git"
    )
    assert template_url("gh:acme/nexus-template.git") == "https://github.com/acme/nexus-template.git"
    assert template_url("git@github.com:acme/nexus-template.git") == "git@github.com:acme/nexus-template.git"


@pytest.fixture
def github(history: TemplateHistory, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[str]:
    """`gh:acme/nexus-template` served by the local history: git's url.<base>.insteadOf, for this test's
    git commands and copier's (plumbum keeps its own copy of the environment)."""
    redirect = {
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": f"url.{history.path}.insteadOf",
        "GIT_CONFIG_VALUE_0": "https://github.com/acme/nexus-template.git",
        "COPIER_CACHE_DIR": str(tmp_path / "copier-cache"),
    }
    for name, value in redirect.items():
        monkeypatch.setenv(name, value)
    with local.env(**redirect):
        yield "gh:acme/nexus-template"


def test_a_service_made_from_a_gh_shortcut_at_the_newest_release_is_up_to_date(
    github: str, monorepo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    service = render(
        Path(github), monorepo / "services/greeter", {"service_name": "greeter"}, vcs_ref="v1.0.0"
    )
    commit_all(monorepo, "add greeter")
    assert answers(service)["_src_path"] == github

    code, result = update_json(capsys, "update", str(service), "--no-resolve")

    assert (code, result["status"], result["detail"]) == (0, "ok", "up to date")
    assert result["changed"] == result["added"] == result["removed"] == []
    assert status(monorepo) == []


def test_a_service_made_between_releases_waits_for_the_next_release_then_takes_it(
    history: TemplateHistory, monorepo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    history.append("template/README.md.jinja", "\nMade after v1.0.0.\n")
    commit_all(history.path, "a change after v1.0.0, not released yet")
    service = generate(history.path, monorepo, "greeter", "HEAD")
    made_from = answers(service)["_commit"]
    assert made_from.startswith("v1.0.0-1-g")

    code, result = update_json(capsys, "update", str(service), "--no-resolve")

    assert (code, result["status"], result["after"]) == (0, "ok", made_from), result["detail"]
    assert result["detail"] == (
        f"ahead of the newest release v1.0.0 (made from {made_from}): it updates with the next release"
    )
    assert status(monorepo) == []

    code, result = update_json(capsys, "update", str(service), "--no-resolve", "--data", "port=9100")

    assert (code, result["status"], result["after"]) == (0, "ok", made_from), result["detail"]
    assert result["answers"] == {"port": [9000, 9100]}
    commit_all(monorepo, "greeter on port 9100")

    history.release("v1.1.0")
    code, result = update_json(capsys, "update", str(service), "--no-resolve")

    assert (code, result["status"], result["after"]) == (0, "ok", "v1.1.0"), result
    assert answers(service)["_commit"] == "v1.1.0"
    assert "Made after v1.0.0." in (service / "README.md").read_text()


def test_a_service_whose_recorded_version_is_gone_updates_from_a_named_base(
    history: TemplateHistory, monorepo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """What teams reach for `copier recopy --overwrite` for (it would drop the edit below), done safely."""
    service = generate(history.path, monorepo, "greeter", "v1.0.0")
    append_line(service / "app/__main__.py", "# tuned by the greeting team")
    recorded = (service / ".copier-answers.yml").read_text()
    (service / ".copier-answers.yml").write_text(recorded.replace("_commit: v1.0.0", "_commit: v0.9.0"))
    commit_all(monorepo, "a template version the template no longer has, and an edit")
    history.append("template/app/healthcheck.py.jinja", "\nIN_V1_1 = True\n")
    history.release("v1.1.0")

    code, result = update_json(capsys, "update", str(service), "--no-resolve")
    assert (code, result["status"]) == (1, "failed")
    assert result["detail"].startswith("copier update failed, service left unchanged")
    assert status(monorepo) == []

    code, result = update_json(capsys, "update", str(service), "--no-resolve", "--base", "v1.0.0")

    assert (code, result["status"], result["before"], result["after"]) == (0, "ok", "v0.9.0", "v1.1.0")
    assert (service / "app/__main__.py").read_text().endswith("# tuned by the greeting team\n")
    assert "IN_V1_1 = True" in (service / "app/healthcheck.py").read_text()
    assert answers(service)["_commit"] == "v1.1.0"


def test_base_is_refused_where_the_recorded_version_still_exists(
    history: TemplateHistory, monorepo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A base in place of a version the template has would pass the releases in between off as the
    service's own edits; a base that is no release is a typo."""
    service = generate(history.path, monorepo, "greeter", "v1.0.0")
    history.append("template/README.md.jinja", "\nMade after v1.0.0.\n")
    commit_all(history.path, "a change after v1.0.0")
    between = generate(history.path, monorepo, "between", "HEAD")  # records v1.0.0-1-g<commit>
    history.append("template/app/healthcheck.py.jinja", "\nIN_V1_1 = True\n")
    history.release("v1.1.0")

    for folder, base, detail in [
        (service, "v1.1.0", "--base: the template still has v1.0.0, the version the service records"),
        (between, "v1.0.0", f"--base: the template still has {answers(between)['_commit']}, the version"),
        (service, "v9.9.9", "--base v9.9.9: the template has no such release tag"),
    ]:
        code, result = update_json(capsys, "update", str(folder), "--no-resolve", "--base", base)

        assert (code, result["status"]) == (1, "failed")
        assert result["detail"].startswith(detail)
    assert answers(service)["_commit"] == "v1.0.0"
    assert status(monorepo) == []
