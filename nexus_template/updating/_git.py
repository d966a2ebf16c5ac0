"""Git plumbing the updater needs, run with a fixed identity so commits work on any machine."""

from __future__ import annotations

import subprocess
from pathlib import Path

from nexus_template.render import git

__all__ = ["changed_paths", "git", "git_bytes", "repository_prefix", "top_level"]


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
