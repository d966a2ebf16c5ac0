"""`update --abort`: undo exactly what an update wrote, and nothing else.

An update that writes into a service leaves a record in the repository's git folder (never in the work
tree, so it is never committed): the paths it wrote, the content each had before (stored as git blobs,
byte for byte) or that it did not exist. `--abort` puts back those paths only, so work the update did not
touch (other files, untracked files, other services) stays as it is. Where no record exists, a plain
`copier update` left uncommitted is recognised by its answers file, and only the paths copier's update
writes (those whose render differs between the two template versions) are put back. Anywhere else it
refuses and changes nothing.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

from nexus_template.updating._answers import ANSWERS_FILE, read_answers
from nexus_template.updating._git import changed_paths, git, repository_prefix, top_level
from nexus_template.updating._guard import OldRender

__all__ = ["AbortRefused", "Undo", "abort_update", "forget_update", "record_update"]


class AbortRefused(ValueError):
    """There is nothing `--abort` may undo here; nothing was changed."""


def _record_path(service: Path) -> Path:
    """Where the record of the last uncommitted update of `service` lives (inside the git folder)."""
    prefix = repository_prefix(service) or "."
    key = hashlib.sha256(prefix.encode()).hexdigest()[:16]
    git_folder = git(service, "rev-parse", "--path-format=absolute", "--git-common-dir").stdout.strip()
    return Path(git_folder) / "nexus-template" / "updates" / f"{key}.json"


def _store_blobs(service: Path, paths: list[str]) -> dict[str, str]:
    """Store the current bytes of each existing file as a git blob (no filters); path -> blob id."""
    existing = [path for path in paths if (service / path).is_file() and not (service / path).is_symlink()]
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


def record_update(service: Path, paths: list[str], *, before: str, after: str, answers: bytes) -> None:
    """Call just before an update writes `paths` into `service` (relative paths, written or removed);
    `answers` is the answers file the update writes."""
    blobs = _store_blobs(service, paths)
    record = {
        "from": before,
        "to": after,
        "answers": hashlib.sha256(answers).hexdigest(),
        "paths": {
            path: {
                "blob": blobs.get(path),
                "mode": (service / path).stat().st_mode if path in blobs else None,
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
    """An update to undo: path -> (blob id, mode) as before it, or None where it created the file."""

    update: str  # "the update v1.0.0 → v1.1.0"
    paths: dict[str, tuple[str, int] | None]


def _answers_hash(content: bytes | None) -> str | None:
    return None if content is None else hashlib.sha256(content).hexdigest()


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
    if _answers_hash(_committed_answers(service)) == record["answers"]:
        record_file.unlink()  # a stale record: the update is committed
        raise AbortRefused(
            f"the update of {service} to {record['to']} is committed: undo it with `git revert`"
        )
    answers = service / ANSWERS_FILE
    if _answers_hash(answers.read_bytes() if answers.is_file() else None) != record["answers"]:
        record_file.unlink()  # a stale record: the update's answers left the work tree by other means
        return None
    paths = {
        path: None if entry["blob"] is None else (entry["blob"], entry["mode"])
        for path, entry in record["paths"].items()
    }
    return Undo(f"the update {record['from']} → {record['to']}", paths)


def _from_plain_copier_update(service: Path) -> Undo | None:
    """A `copier update` left uncommitted: the answers file in the work tree names another version than
    the committed one. The paths copier's update writes are those its two renders differ in."""
    old, new = read_answers(_committed_answers(service)), read_answers((service / ANSWERS_FILE).read_bytes())
    if not old.get("_src_path") or not new.get("_commit") or old.get("_commit") == new.get("_commit"):
        return None
    before, after = OldRender(old).files, OldRender(new).files
    written = {path for path in before.keys() | after.keys() if before.get(path) != after.get(path)}
    written |= {f"{path}.rej" for path in written} | {ANSWERS_FILE}
    tree = dict(_tree_entries(service))
    changed = set(changed_paths(service))
    return Undo(
        f"the copier update {old['_commit']} → {new['_commit']}",
        {path: tree.get(path) for path in sorted(written) if path in changed},
    )


def _tree_entries(service: Path) -> list[tuple[str, tuple[str, int]]]:
    """(path, (blob id, mode)) of every file of the service in HEAD."""
    listed = git(service, "ls-tree", "-r", "-z", "--full-name", "HEAD", "--", ".").stdout
    prefix = repository_prefix(service)
    entries = []
    for line in filter(None, listed.split("\0")):
        meta, path = line.split("\t", 1)
        mode, kind, blob = meta.split()
        if kind == "blob":
            entries.append((path.removeprefix(prefix), (blob, int(mode, 8))))
    return entries


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
        content = subprocess.run(
            ["git", "cat-file", "blob", blob], cwd=service, capture_output=True, check=True
        ).stdout
        if target.is_symlink():
            target.unlink()
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
        target.chmod(mode & 0o7777)
    # index entries the update left for these paths (a plain copier update's unmerged files) go back to HEAD
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
