"""Where a service's template comes from, and where it stands against the template's releases.

A service records its template as copier was given it (`_src_path`: a path, a URL, or one of copier's
shortcuts such as `gh:org/nexus-template`) and its version as copier described it (`_commit`: a release
tag, or `v1.0.0-3-gabc1234` for a service made from a commit after a release).
"""

from __future__ import annotations

import re
from pathlib import Path
from tempfile import TemporaryDirectory

from copier._vcs import get_repo  # copier is pinned (pyproject.toml): its own shortcut expansion
from packaging.version import InvalidVersion, Version

from nexus_template.updating._git import git

__all__ = ["ahead_of", "has_tag", "has_version", "latest_release", "template_url"]

# `git describe --tags` of a commit after a tag: the tag, the commits since it, "g" and the commit
_AFTER_A_TAG = re.compile(r"^(?P<tag>.+)-(?P<count>\d+)-g(?P<commit>[0-9a-f]+)$")


def template_url(src: str) -> str:
    """The address git understands for a recorded `_src_path`, expanded exactly as copier expands it
    (git alone reads `gh:org/repo` as an ssh host called "gh")."""
    return get_repo(src) or src


def latest_release(src: str) -> str | None:
    """The newest release tag of the template (what copier takes without --vcs-ref), None if unknown.

    Asked for every service, not cached: a release can be tagged while a long process runs."""
    listed = git(Path.cwd(), "ls-remote", "--tags", "--refs", "--", template_url(src), check=False)
    versions = []
    for line in listed.stdout.splitlines():
        tag = line.rpartition("refs/tags/")[2]
        try:
            version = Version(tag)
        except InvalidVersion:
            continue
        if not version.is_prerelease:
            versions.append((version, tag))
    return max(versions)[1] if versions else None


def has_tag(src: str, tag: str) -> bool:
    """Does the template still have this tag?"""
    listed = git(
        Path.cwd(), "ls-remote", "--tags", "--refs", "--", template_url(src), f"refs/tags/{tag}", check=False
    )
    return bool(listed.stdout.strip())


def has_version(src: str, version: str) -> bool:
    """Does the template still have this version: a tag, or a commit (`v1.0.0-3-gabc1234`, as copier records
    a commit after a tag, or a hash)? A commit is looked up in a clone without files (slower: a tag first)."""
    if has_tag(src, version):
        return True
    with TemporaryDirectory(prefix="nexus-template-versions-") as clone:
        cloned = git(Path.cwd(), "clone", "--quiet", "--bare", "--", template_url(src), clone, check=False)
        found = git(Path(clone), "rev-parse", "--verify", "--quiet", f"{version}^{{commit}}", check=False)
        return cloned.returncode == 0 and found.returncode == 0


def ahead_of(recorded: str, release: str) -> bool:
    """Was the service made from a commit after `release` (copier refuses to take it "back" to it)?

    Compared as copier compares them: `v1.0.0-3-gabc1234` is v1.0.0 plus three commits, newer than v1.0.0
    and older than v1.0.1. A bare commit hash has no place among the releases: not ahead."""
    after_a_tag = _AFTER_A_TAG.match(recorded)
    try:
        version = (
            Version(f"{after_a_tag['tag']}.post{after_a_tag['count']}") if after_a_tag else Version(recorded)
        )
        return version > Version(release)
    except InvalidVersion:
        return False
