"""`update --abort`: undo exactly what an update wrote, and nothing else.

An update that writes into a service leaves a record in the work tree's git folder (never in the work
tree itself, so it is never committed; one per git worktree): the service's committed tree it started
from, and for each path it wrote the content before (stored as a git blob, byte for byte, or "absent")
and a hash of what it wrote. `--abort` puts back each path that still holds what the update wrote; a path
changed since (a conflict being resolved, a secret typed into a new `.env`) is left as it is and named,
and nothing the update did not write is touched. A record whose service was committed since is stale
and ignored. Without a record, a plain `copier update` left uncommitted is recognised by its answers file,
and only the paths copier's update writes (those whose render differs between the two template
versions) are put back. Anywhere else it refuses and changes nothing.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from nexus_template.updating._answers import ANSWERS_FILE, read_answers
from nexus_template.updating._conflicts import has_markers
from nexus_template.updating._git import changed_paths, committed_files, git, repository_prefix, top_level
from nexus_template.updating._guard import OldRender

__all__ = ["RESTORE", "AbortRefused", "Undo", "abort_update", "forget_update", "recorded_update"]

# how a person puts one file of the service back to its last commit (index and work tree)
RESTORE = "git restore --source=HEAD --staged --worktree --"


class AbortRefused(ValueError):
    """There is nothing `--abort` may undo here; nothing was changed."""


def _record_path(service: Path) -> Path:
    """Where the record of the last uncommitted update of `service` lives: this work tree's git folder (a
    second worktree of the repository has its own files, and its own record)."""
    prefix = repository_prefix(service) or "."
    key = hashlib.sha256(prefix.encode()).hexdigest()[:16]
    git_folder = git(service, "rev-parse", "--absolute-git-dir").stdout.strip()
    return Path(git_folder) / "nexus-template" / "updates" / f"{key}.json"


def _committed_tree(service: Path) -> str:
    """The id of the service folder's tree in HEAD: it changes exactly when a commit changes the service."""
    return git(service, "rev-parse", f"HEAD:{repository_prefix(service)}", check=False).stdout.strip()


def _store_blobs(service: Path, paths: list[str]) -> dict[str, str]:
    """Store the current bytes of each existing file as a git blob (no filters); path -> blob id."""
    existing = [path for path in paths if _content(service / path) is not None]
    if not existing:
        return {}
    stored = subprocess.run(
        ["git", "hash-object", "-w", "--no-filters", "--stdin-paths"],
        cwd=service,
        input="".join(f"{service / path}\n" for path in existing),  # git reads them from the top folder
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(zip(existing, stored.stdout.split(), strict=True))


def _content(path: Path) -> bytes | None:
    return path.read_bytes() if path.is_file() and not path.is_symlink() else None


def _digest(content: bytes | None) -> str | None:
    return None if content is None else hashlib.sha256(content).hexdigest()


@contextmanager
def recorded_update(service: Path, paths: list[str], *, before: str, after: str) -> Iterator[None]:
    """Around the block that writes (or removes) `paths` in `service`: what they hold before is stored
    first, and the record is written once the block has written them (not if it raised)."""
    tree = _committed_tree(service)
    blobs = _store_blobs(service, paths)
    modes = {path: (service / path).stat().st_mode for path in blobs}
    yield
    record = {
        "from": before,
        "to": after,
        "tree": tree,
        "answers": _digest(_content(service / ANSWERS_FILE)),
        "paths": {
            path: {
                "blob": blobs.get(path),
                "mode": modes.get(path),
                "written": _digest(_content(service / path)),
            }
            for path in sorted(paths)
        },
    }
    target = _record_path(service)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(record, indent=1))


def forget_update(service: Path) -> None:
    """The update was committed (or undone): there is nothing left to abort."""
    _record_path(service).unlink(missing_ok=True)


@dataclass
class Undo:
    """An update to undo: path -> (blob id, mode) as before it, or None where it created the file; and the
    paths it wrote that were changed since (left as they are)."""

    update: str  # "the update v1.0.0 → v1.1.0"
    paths: dict[str, tuple[str, int] | None]
    changed_since: list[str] = field(default_factory=list)


def _committed_answers(service: Path) -> bytes | None:
    shown = subprocess.run(
        ["git", "show", f"HEAD:./{ANSWERS_FILE}"], cwd=service, capture_output=True, check=False
    )
    return shown.stdout if shown.returncode == 0 else None


def _from_record(service: Path) -> Undo | None:
    record_file = _record_path(service)
    if not record_file.is_file():
        return None
    record = json.loads(record_file.read_text())
    if _committed_tree(service) != record["tree"]:  # the service was committed since: a stale record
        if _digest(_committed_answers(service)) == record["answers"]:
            record_file.unlink()
            raise AbortRefused(
                f"the update of {service} to {record['to']} is committed: undo it with `git revert`"
            )
        if _digest(_content(service / ANSWERS_FILE)) == record["answers"]:
            # the update is still in the work tree, and part of the folder was committed on top of it: what
            # is the update's and what is yours can no longer be told apart, so nothing is touched
            raise AbortRefused(
                f"files of {service} were committed after the update to {record['to']}, which is still in "
                "the work tree: --abort cannot tell its files from yours any more; put files back one by "
                f"one with `{RESTORE} FILE`"
            )
        record_file.unlink()  # the update left the work tree by other means
        return None
    undo = Undo(f"the update {record['from']} → {record['to']}", {})
    for path, entry in record["paths"].items():
        now = _digest(_content(service / path))
        if now == entry["written"]:
            undo.paths[path] = None if entry["blob"] is None else (entry["blob"], entry["mode"])
        elif now != (None if entry["blob"] is None else _digest(_blob(service, entry["blob"]))):
            undo.changed_since.append(path)  # neither what the update wrote nor what was there before
    if not undo.paths and not undo.changed_since:  # everything is back already: undone by other means
        record_file.unlink()
        return None
    return undo


def _from_plain_copier_update(service: Path) -> Undo | None:
    """A `copier update` left uncommitted: the answers file in the work tree names another version than
    the committed one. The paths copier's update writes are those its two renders differ in."""
    old, new = read_answers(_committed_answers(service)), read_answers((service / ANSWERS_FILE).read_bytes())
    if not old.get("_src_path") or not new.get("_commit") or old.get("_commit") == new.get("_commit"):
        return None
    before, after = OldRender(old).files, OldRender(new).files
    written = {path for path in before.keys() | after.keys() if before.get(path) != after.get(path)}
    tree = {path: (oid, int(mode, 8)) for path, (mode, oid) in committed_files(service).items()}
    undo = Undo(f"the copier update {old['_commit']} → {new['_commit']}", {})
    for path in sorted(
        set(changed_paths(service)) & (written | {f"{path}.rej" for path in written} | {ANSWERS_FILE})
    ):
        now = _content(service / path)
        # as copier writes a path: the new version as it is, its `.rej` or conflict markers, or removed;
        # anything else there (a conflict resolved by hand, a clean merge with your edits) may be yours
        if (
            path == ANSWERS_FILE
            or path.endswith(".rej")
            or now == after.get(path)
            or (now and has_markers(now))
        ):
            undo.paths[path] = tree.get(path)
        else:
            undo.changed_since.append(path)
    return undo


def _blob(service: Path, blob: str) -> bytes:
    return subprocess.run(
        ["git", "cat-file", "blob", blob], cwd=service, capture_output=True, check=True
    ).stdout


def _put_back(service: Path, undo: Undo) -> None:
    for path, kept in undo.paths.items():
        target = service / path
        if kept is None:
            if target.is_file() or target.is_symlink():
                target.unlink()
            for parent in target.parents:
                if parent == service or not parent.is_dir() or any(parent.iterdir()):
                    break
                parent.rmdir()
            continue
        blob, mode = kept
        content = _blob(service, blob)
        if target.is_symlink():
            target.unlink()
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
        target.chmod(mode & 0o7777)
    # index entries the update left for these paths (a plain copier update's unmerged files) go back to HEAD
    if undo.paths:
        git(service, "reset", "--quiet", "--", *undo.paths, check=False)


def abort_update(service: Path) -> Undo:
    """Undo the uncommitted update of `service`; what was undone. Raises AbortRefused, having changed
    nothing, when `service` is no service or no update of it is in progress."""
    if not service.is_dir():
        raise AbortRefused(f"{service} is not a folder")
    if top_level(service) is None:
        raise AbortRefused(f"{service} is not in a git repository: there is no update to undo")
    if not (service / ANSWERS_FILE).is_file():
        raise AbortRefused(f"{service} is not a service folder (no {ANSWERS_FILE}): name the service to undo")
    undo = _from_record(service) or _from_plain_copier_update(service)
    if undo is None:
        raise AbortRefused(f"no update of {service} is in progress: nothing undone, nothing changed")
    _put_back(service, undo)
    forget_update(service)
    return undo
