"""Git plumbing the updater needs.

Commits in a team's repository (`update-all --commit`) carry the team's own git identity; only the
scratch repository an update runs in (`_isolated`) commits with a fixed one, so updates work on machines
where git has no identity configured.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

__all__ = [
    "REGULAR_FILE_MODES",
    "changed_paths",
    "committed_files",
    "git",
    "git_bytes",
    "repository_prefix",
    "scratch_git",
    "top_level",
]

_SCRATCH_IDENTITY = {
    "GIT_AUTHOR_NAME": "nexus-template",
    "GIT_AUTHOR_EMAIL": "nexus-template@localhost.invalid",
    "GIT_COMMITTER_NAME": "nexus-template",
    "GIT_COMMITTER_EMAIL": "nexus-template@localhost.invalid",
}


# git's modes of regular files (not symlinks, 120000, nor submodules, 160000)
REGULAR_FILE_MODES = ("100644", "100755")


def git(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=check)


def scratch_git(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """git in the updater's own scratch repository, with a fixed identity."""
    return subprocess.run(
        ["git", *args],
        cwd=cwd,
        env={**os.environ, **_SCRATCH_IDENTITY},
        capture_output=True,
        text=True,
        check=True,
    )


def git_bytes(cwd: Path, *args: str) -> bytes:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, check=True).stdout


def top_level(folder: Path) -> Path | None:
    result = git(folder, "rev-parse", "--show-toplevel", check=False)
    return Path(result.stdout.strip()) if result.returncode == 0 else None


def repository_prefix(folder: Path) -> str:
    """The folder's path inside its repository ("" at the root, else "services/alpha/")."""
    return git(folder, "rev-parse", "--show-prefix").stdout.strip()


def changed_paths(folder: Path) -> list[str]:
    """Paths (relative to `folder`) that git reports as changed, unmerged or untracked there, and only there."""
    prefix = repository_prefix(folder)
    status = git(folder, "status", "--porcelain", "-z", "--untracked-files=all", "--", ".")
    entries = status.stdout.split("\0")
    paths, skip_next = [], False
    for entry in entries:
        if skip_next:  # the source path of a rename
            skip_next = False
            continue
        if entry:
            paths.append(entry[3:].removeprefix(prefix))
            skip_next = entry[0] in "RC"
    return paths


def committed_files(folder: Path) -> dict[str, tuple[str, str]]:
    """The regular files of `folder` in HEAD: path relative to it -> (git mode, blob id)."""
    prefix = repository_prefix(folder)
    top = folder.parents[len(Path(prefix).parts) - 1] if prefix else folder
    # from the top: inside a subfolder, ls-tree would also filter the tree's paths by that subfolder
    listing = git(top, "ls-tree", "-r", "-z", f"HEAD:{prefix}" if prefix else "HEAD").stdout
    files = {}
    for entry in filter(None, listing.split("\0")):
        meta, _, path = entry.partition("\t")
        mode, kind, oid = meta.split()
        if kind == "blob" and mode in REGULAR_FILE_MODES:
            files[path] = (mode, oid)
    return files
