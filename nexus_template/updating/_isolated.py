"""Run `copier update` on an isolated copy of one service and describe what it did.

The copy is a throwaway git repository holding the service folder as committed, so copier sees only
the service: unresolved conflicts, uncommitted work or deletions elsewhere in the monorepo neither break
nor leak into the update, and the monorepo's index is never touched (a conflict comes back as markers
in files, not as unmerged entries that would break every later `git write-tree`).
"""

from __future__ import annotations

import os
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

from copier import run_update

from nexus_template.updating._git import git, git_bytes, repository_prefix, scratch_git

__all__ = ["Snapshot", "apply_to", "commit_copy", "isolated_copy", "run_copier", "snapshot", "unmerged"]


@dataclass
class Snapshot:
    """The files of a folder (relative path -> bytes), without .git."""

    files: dict[str, bytes] = field(default_factory=dict)
    modes: dict[str, int] = field(default_factory=dict)


def snapshot(folder: Path) -> Snapshot:
    taken = Snapshot()
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = [name for name in dirnames if name != ".git"]
        for name in filenames:
            path = Path(dirpath) / name
            if path.is_symlink() or not path.is_file():
                continue
            relative = path.relative_to(folder).as_posix()
            taken.files[relative] = path.read_bytes()
            taken.modes[relative] = path.stat().st_mode
    return taken


@contextmanager
def isolated_copy(service: Path) -> Iterator[Path]:
    """A temporary git repository holding the service folder as committed in HEAD."""
    prefix = repository_prefix(service)
    top = service.parents[len(Path(prefix).parts) - 1] if prefix else service
    # a tree archive is made from the top of the repository (git refuses it from a subfolder)
    archive = git_bytes(top, "archive", "--format=tar", f"HEAD:{prefix}" if prefix else "HEAD")
    with TemporaryDirectory(prefix="nexus-update-") as temp:
        copy = Path(temp) / service.name
        copy.mkdir()
        with tarfile.open(fileobj=BytesIO(archive)) as tar:
            tar.extractall(copy, filter="tar")
        scratch_git(copy, "init", "--quiet", "--initial-branch=main")
        yield copy


def commit_copy(copy: Path) -> None:
    scratch_git(copy, "add", "--all")
    scratch_git(copy, "commit", "--quiet", "--no-verify", "--message", "the service before the update")


def run_copier(copy: Path, *, vcs_ref: str | None, data: dict[str, Any]) -> str | None:
    """`copier update` in the copy; None on success, else copier's one-line reason."""
    try:
        run_update(
            copy,
            data=data,
            defaults=True,
            unsafe=True,
            quiet=True,
            overwrite=True,
            conflict="inline",
            vcs_ref=vcs_ref,
        )
    except (Exception, SystemExit) as error:  # noqa: BLE001 -- copier raises many kinds; all are reported
        lines = str(error).strip().splitlines()
        return f"{type(error).__name__}: {lines[-1] if lines else 'copier update failed'}"
    return None


def apply_to(service: Path, before: Snapshot, after: Snapshot) -> None:
    """Make the service folder's tracked files equal `after` (untracked/ignored files are left alone)."""
    for relative, content in after.files.items():
        if before.files.get(relative) == content and before.modes.get(relative) == after.modes[relative]:
            continue
        target = service / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
        target.chmod(after.modes[relative] & 0o7777)
    for relative in before.files.keys() - after.files.keys():
        target = service / relative
        target.unlink(missing_ok=True)
        for parent in target.parents:
            if parent == service or not parent.is_dir() or any(parent.iterdir()):
                break
            parent.rmdir()


def unmerged(copy: Path) -> list[str]:
    return git(copy, "diff", "--name-only", "--diff-filter=U").stdout.split()
