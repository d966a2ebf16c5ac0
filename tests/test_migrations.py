"""Contract: releases keep every migration that a supported older version needs.

A service skipping releases runs only the migrations of the release it lands on; one a later release
dropped is never run, and copier then drops or resets answers without a word. So every migration that
copier.yml ever listed (its history on this branch is the record: the repository has no tags yet) is
still listed, with its script, or CHANGELOG.md says which release such a service must step through: a
line `Step through vX.Y.Z: ...` naming the removed script (see migrations/README.md).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from devtools.render import ROOT, git

SCRIPT = re.compile(r"migrations/[\w./-]+\.py")
STEP_THROUGH = re.compile(r"^.*\bStep through v\d+\.\d+\.\d+\b.*$", re.MULTILINE)


def migrations(copier_yml: str) -> set[tuple[str, str]]:
    """(version, script) of each `_migrations` entry; version "every update" for one without a version."""
    entries = (yaml.safe_load(copier_yml) or {}).get("_migrations") or []
    found = set()
    for entry in entries:
        command = entry["command"]
        (script,) = SCRIPT.findall(" ".join(command) if isinstance(command, list) else command)
        found.add((str(entry.get("version", "every update")), script))
    return found


def migrations_ever_listed() -> dict[tuple[str, str], str]:
    """(version, script) -> the first commit of copier.yml's history that lists it."""
    if git(ROOT, "rev-parse", "--is-shallow-repository").stdout.strip() != "false":
        # as test_update_from_the_previous_release_of_this_repository: the record is the history, and a
        # shallow clone has none to read (said, never passed)
        pytest.skip("a shallow clone hides the migrations older releases had: git fetch --unshallow")
    commits = git(ROOT, "log", "--reverse", "--format=%H", "--", "copier.yml").stdout.split()
    assert commits, "copier.yml has no history here: the contract cannot be checked"
    listed: dict[tuple[str, str], str] = {}
    for commit in commits:
        for migration in migrations(git(ROOT, "show", f"{commit}:copier.yml").stdout):
            listed.setdefault(migration, commit[:12])
    return listed


def unaccounted(current: set[tuple[str, str]], ever: dict[tuple[str, str], str], changelog: str) -> list[str]:
    """The migrations once listed that `current` lacks and no `Step through` line of `changelog` names."""
    step_through = STEP_THROUGH.findall(changelog)
    return [
        f"{script} ({version}, listed since {commit})"
        for (version, script), commit in sorted(ever.items())
        if (version, script) not in current and not any(Path(script).name in line for line in step_through)
    ]


def test_every_migration_a_release_had_is_kept_or_the_release_notes_say_where_to_step_through() -> None:
    missing = unaccounted(
        migrations((ROOT / "copier.yml").read_text()),
        migrations_ever_listed(),
        (ROOT / "CHANGELOG.md").read_text(),
    )
    assert not missing, (
        "migrations older releases had are gone from copier.yml, and CHANGELOG.md names no release to step "
        f"through for them: {'; '.join(missing)}"
    )


def test_every_listed_migration_script_exists() -> None:
    listed = migrations((ROOT / "copier.yml").read_text())
    absent = [script for _, script in sorted(listed) if not (ROOT / script).is_file()]
    assert not absent, f"copier.yml lists migrations whose scripts are gone: {absent}"


def test_a_removed_migration_breaks_the_contract_until_the_release_notes_name_it() -> None:
    ever = migrations_ever_listed()
    assert ("v0.2.0", "migrations/v0_2_0.py") in ever  # the record reaches back to the first migration
    today = migrations((ROOT / "copier.yml").read_text())
    without_v0_2_0 = {migration for migration in today if migration[0] != "v0.2.0"}
    changelog = (ROOT / "CHANGELOG.md").read_text()

    assert unaccounted(without_v0_2_0, ever, changelog) == [
        f"migrations/v0_2_0.py (v0.2.0, listed since {ever[('v0.2.0', 'migrations/v0_2_0.py')]})"
    ]
    note = "- Step through v0.2.0: migrations/v0_2_0.py was removed; older services take `--vcs-ref v0.2.0` first\n"
    assert unaccounted(without_v0_2_0, ever, changelog + note) == []
