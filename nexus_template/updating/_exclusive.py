"""One writing run per repository: two updates writing into one monorepo at once would commit each
other's files (`git commit` takes the shared index) or fail half-way with git's index lock."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from nexus_template.updating._git import git

__all__ = ["RepositoryBusy", "exclusive"]


class RepositoryBusy(RuntimeError):
    """Another nexus-template run is writing into this repository."""


@contextmanager
def exclusive(folder: Path) -> Iterator[None]:
    """Hold the repository's update lock for the block; RepositoryBusy at once if another process holds it.

    The lock is an flock on a file in the git folder: the kernel releases it when the holder exits, so a
    killed run never leaves a stale lock behind."""
    common = folder.is_dir() and git(
        folder, "rev-parse", "--path-format=absolute", "--git-common-dir", check=False
    )
    if not common or common.returncode != 0:  # no folder, or not in git: the update refuses that itself
        yield
        return
    lock_file = Path(common.stdout.strip()) / "nexus-template" / "update.lock"
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with lock_file.open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise RepositoryBusy(
                f"another nexus-template update is writing into this repository ({holder}): "
                "wait for it to finish, then run again"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}")
        handle.flush()
        try:
            yield
        finally:
            handle.seek(0)
            handle.truncate()
            fcntl.flock(handle, fcntl.LOCK_UN)
