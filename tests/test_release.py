"""`make release VERSION=X.Y.Z` (devtools/release.py) on a copy of this repository, never on the checkout.

The copy is the working tree committed into a fresh repository (devtools/render.py), with the newest CHANGELOG
section as it is before a release (`## vX.Y.Z — unreleased`, X.Y.Z the library's version). The release
dates that section, builds the wheel, commits and tags; copier then takes the tag: `_commit: vX.Y.Z`, and
none of copier's "No git tags" warnings. Every refusal leaves the copy as it was.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from devtools.release import CHANGELOG, LIBRARY_VERSION, TOOLS
from devtools.render import GIT_IDENTITY, copy_working_tree, git
from extensions.context import docs_base_url, template_docs

BIN = Path(sys.executable).parent


def library_version(repository: Path) -> str:
    found = re.search(r'(?m)^__version__ = "([^"]+)"$', (repository / LIBRARY_VERSION).read_text())
    assert found
    return found[1]


@pytest.fixture
def repository(tmp_path: Path) -> Path:
    """A copy of the working tree, committed, whose newest CHANGELOG section is unreleased (as between
    releases: after a release, the section is dated until the next one opens)."""
    copy = copy_working_tree(tmp_path / "nexus-template")
    changelog = copy / CHANGELOG
    version = library_version(copy)
    text, count = re.subn(
        rf"(?m)^## v{re.escape(version)} — \d{{4}}-\d{{2}}-\d{{2}}$",
        f"## v{version} — unreleased",
        changelog.read_text(),
    )
    if count:
        changelog.write_text(text)
        git(copy, "commit", "--quiet", "--all", "--message", "between releases")
    return copy


def make_release(repository: Path, version: str) -> subprocess.CompletedProcess[str]:
    """`make release` as a maintainer runs it, with this environment's Python (the copy has no .venv)."""
    return subprocess.run(
        ["make", "--no-print-directory", "release", f"VERSION={version}", f"PYTHON={sys.executable}"],
        cwd=repository,
        env={**os.environ, **GIT_IDENTITY},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def state(repository: Path) -> tuple[str, str, str, str]:
    """HEAD, the tags, the work tree's changes and the CHANGELOG: what a refusal must leave as it was."""
    return (
        git(repository, "rev-parse", "HEAD").stdout,
        git(repository, "tag", "--list").stdout,
        git(repository, "status", "--porcelain", "--untracked-files=all").stdout,
        (repository / CHANGELOG).read_text(),
    )


def test_a_release_dates_the_changelog_builds_the_wheel_and_tags_what_copier_takes(
    repository: Path, tmp_path: Path
) -> None:
    version = library_version(repository)
    days = {datetime.now(UTC).date().isoformat()}
    released = make_release(repository, version)
    days.add(datetime.now(UTC).date().isoformat())  # a run across midnight UTC
    assert released.returncode == 0, released.stderr

    (heading,) = [
        line
        for line in (repository / CHANGELOG).read_text().splitlines()
        if line.startswith(f"## v{version} ")
    ]
    assert heading.removeprefix(f"## v{version} — ") in days
    assert (repository / "dist" / f"nexus_ai_platform-{version}-py3-none-any.whl").is_file()
    tag = f"v{version}"
    assert git(repository, "cat-file", "-t", tag).stdout.strip() == "tag"  # annotated
    assert (
        git(repository, "rev-parse", f"{tag}^{{commit}}").stdout
        == git(repository, "rev-parse", "HEAD").stdout
    )
    assert git(repository, "log", "-1", "--format=%s").stdout.startswith(f"Release {tag}: ")
    assert git(repository, "show", "--name-only", "--format=", "HEAD").stdout.split() == [CHANGELOG]
    assert "Action needed" in git(repository, "tag", "--list", "--format=%(contents)", tag).stdout
    assert git(repository, "status", "--porcelain").stdout == ""  # dist/ is ignored

    copied = subprocess.run(
        [str(BIN / "copier"), "copy", "--trust", "--defaults", "--data", "service_name=released",
         str(repository), str(tmp_path / "released")],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert copied.returncode == 0, copied.stderr
    assert "No git tags" not in copied.stderr + copied.stdout
    answers = yaml.safe_load((tmp_path / "released" / ".copier-answers.yml").read_text())
    assert answers["_commit"] == tag
    # the generated README links the docs of that release (docs_base_url: auto, a local template here)
    assert f"{repository.as_uri()}/docs/updating.md" in (tmp_path / "released" / "README.md").read_text()


def test_a_release_refuses_a_dirty_tree_an_existing_tag_and_an_older_version(repository: Path) -> None:
    version = library_version(repository)
    major, minor, patch = (int(part) for part in version.split("."))
    before = state(repository)

    (repository / "notes.txt").write_text("not committed\n")
    refused = make_release(repository, version)
    assert refused.returncode != 0
    assert "release: the work tree has uncommitted or untracked files: notes.txt" in refused.stderr
    (repository / "notes.txt").unlink()

    for tag, why in [
        (f"v{version}", f"the tag v{version} exists already"),
        (
            f"v{major}.{minor + 1}.0",
            f"v{version} is not newer than the newest release tag v{major}.{minor + 1}.0",
        ),
    ]:
        git(repository, "tag", tag)
        refused = make_release(repository, version)
        assert refused.returncode != 0
        assert f"release: {why}" in refused.stderr
        git(repository, "tag", "--delete", tag)
    assert state(repository) == before

    refused = make_release(repository, f"{major}.{minor}")
    assert "release: VERSION must be X.Y.Z" in refused.stderr
    refused = make_release(repository, f"{major}.{minor}.{patch + 1}")
    assert f"not '## v{major}.{minor}.{patch + 1} — unreleased'" in refused.stderr
    assert state(repository) == before


def test_a_release_refuses_what_does_not_name_its_version(repository: Path) -> None:
    version = library_version(repository)
    tags = git(repository, "tag", "--list").stdout

    # the library, or the tools (`pip show nexus-template`), under another version than the template's
    for relative, line in ((LIBRARY_VERSION, '__version__ = "{}"'), (TOOLS, 'version = "{}"')):
        file = repository / relative
        file.write_text(file.read_text().replace(line.format(version), line.format("0.0.9")))
        git(repository, "commit", "--quiet", "--all", "--message", f"{relative} behind")
        refused = make_release(repository, version)
        assert f"release: {relative} says 0.0.9, not {version}" in refused.stderr
        git(repository, "revert", "--no-edit", "HEAD")

    # a migration script no copier.yml entry runs: it would never run for anyone
    (repository / "migrations" / "v0_0_1.py").write_text('"""v0.0.1: a script no copier.yml entry runs."""\n')
    git(repository, "add", "--all")
    git(repository, "commit", "--quiet", "--message", "an unregistered migration")
    refused = make_release(repository, version)
    assert (
        "release: migration v0.0.1: migrations/v0_0_1.py and a copier.yml `_migrations` entry"
        in refused.stderr
    )
    assert git(repository, "tag", "--list").stdout == tags


@pytest.mark.parametrize(
    ("source", "docs"),
    [
        ("gh:acme/nexus-template", "https://github.com/acme/nexus-template/blob/v0.4.0/docs"),
        ("https://github.com/acme/nexus-template.git", "https://github.com/acme/nexus-template/blob/v0.4.0/docs"),
        ("git@github.com:acme/nexus-template.git", "https://github.com/acme/nexus-template/blob/v0.4.0/docs"),
        ("gl:acme/nexus-template", "https://gitlab.com/acme/nexus-template/-/blob/v0.4.0/docs"),
        ("https://git.acme.example/platform/nexus-template", "https://git.acme.example/platform/nexus-template/blob/v0.4.0/docs"),
        ("/srv/nexus-template", "file:///srv/nexus-template/docs"),  # a local clone: its docs/ folder
    ],
)  # fmt: skip
def test_generated_readmes_link_the_docs_of_their_release_at_the_templates_address(
    source: str, docs: str
) -> None:
    """docs_base_url `auto`, as extensions/context.py derives it from `_src_path` (README.md.jinja links
    `{{ template_docs }}/<page>.md`); a typed docs_base_url has its {ref} filled in the same way."""
    assert template_docs(docs_base_url(source), "v0.4.0") == docs
    assert template_docs("https://docs.acme.example/nexus/{ref}", "v0.4.0-3-gabc1234") == (
        "https://docs.acme.example/nexus/abc1234"  # a commit after a release: that commit's docs
    )
