"""Run `copier update` on an isolated copy of one service, describe what it did, and write it back.

The copy is a throwaway git repository holding the service folder as committed, so copier sees only
the service: unresolved conflicts, uncommitted work or deletions elsewhere in the monorepo neither break
nor leak into the update, and the monorepo's index is never touched (a conflict comes back as markers
in files, not as unmerged entries that would break every later `git write-tree`).

The copy is made from the committed blobs, not with `git archive`: an archive honours the service's
.gitattributes (export-ignore leaves files out, so copier re-creates seeds over them; export-subst and
smudge filters rewrite files), and an update must start from the service's files as they are.

An update never writes at a path where the service has something the copy did not hold (an ignored or
untracked file, a symlink, a submodule), nor through a symlink: symlinks and submodules are left out of
the copy (copier then sees the files behind them as deleted by the service and leaves them alone), and
`keep_service_files` takes back whatever the update would have written there and says so.
"""

from __future__ import annotations

import difflib
import os
import subprocess
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

from copier import run_update

from nexus_template.updating._git import committed_files, git, scratch_git

__all__ = [
    "Snapshot",
    "apply_to",
    "commit_copy",
    "isolated_copy",
    "keep_service_files",
    "run_copier",
    "snapshot",
    "unmerged",
]

# where the release's version of a file goes when the service already has its own file at that path
TEMPLATE_NEW_SUFFIX = ".template-new"
_EXECUTABLE = "100755"


@dataclass
class Snapshot:
    """The regular files of a folder (relative path -> bytes), without .git; symlinks are left out."""

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


def _committed_contents(service: Path) -> dict[str, tuple[str, bytes]]:
    """The regular files of the service in HEAD: relative path -> (git mode, content), read by one
    `git cat-file --batch`. Symlinks (120000) and submodules (160000) are not regular files."""
    entries = [(mode, oid, path) for path, (mode, oid) in committed_files(service).items()]
    batch = subprocess.run(
        ["git", "cat-file", "--batch"],
        cwd=service,
        input="".join(f"{oid}\n" for _, oid, _ in entries).encode(),
        capture_output=True,
        check=True,
    ).stdout
    files, position = {}, 0
    for mode, oid, path in entries:
        header_end = batch.index(b"\n", position)
        header = batch[position:header_end].split()
        if len(header) != 3 or header[0].decode() != oid:
            raise RuntimeError(f"git cat-file could not read {path} ({oid}): {b' '.join(header).decode()}")
        start = header_end + 1
        end = start + int(header[2])
        files[path] = (mode, batch[start:end])
        position = end + 1  # the content is followed by a newline
    return files


@contextmanager
def isolated_copy(service: Path) -> Iterator[Path]:
    """A temporary git repository holding the service's committed regular files, byte for byte."""
    committed = _committed_contents(service)
    with TemporaryDirectory(prefix="nexus-update-") as temp:
        copy = Path(temp) / service.name
        copy.mkdir()
        for relative, (mode, content) in committed.items():
            target = copy / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
            if mode == _EXECUTABLE:  # git's checkout: executable where readable
                readable = target.stat().st_mode
                target.chmod(readable | (readable & 0o444) >> 2)
        scratch_git(copy, "init", "--quiet", "--initial-branch=main")
        # the copy's bytes are final: no eol conversion, filter or ident of the service's .gitattributes
        # (nor of the user's global git config) may change them when copier's git reads or writes them
        (copy / ".git/info/attributes").write_text("* -text -filter -ident\n")
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


def _obstacle(service: Path, relative: str) -> tuple[str, str] | None:
    """What in the service stands where an update would write `relative`, if anything: (path, kind),
    kind being "symlink" or "submodule" (an update never writes through them), "file" (a file where
    the path needs a folder) or, at `relative` itself, "existing file" / "existing folder"."""
    parts = Path(relative).parts
    for depth in range(1, len(parts) + 1):
        path = service.joinpath(*parts[:depth])
        shown = "/".join(parts[:depth])
        if path.is_symlink():
            return shown, "symlink"
        if not path.exists():
            return None
        if path.is_dir() and (path / ".git").exists():
            return shown, "submodule"
        if depth == len(parts):
            return shown, "existing folder" if path.is_dir() else "existing file"
        if not path.is_dir():
            return shown, "file"
    return None


def _release_diff(relative: str, old: bytes | None, new: bytes | None) -> str:
    """The release's change to one file as a unified diff (None: the render has no such file)."""
    if b"\0" in (old or b"")[:8000] + (new or b"")[:8000]:
        return "(a binary file)"
    lines = difflib.unified_diff(
        (old or b"").decode(errors="replace").splitlines(keepends=True),
        (new or b"").decode(errors="replace").splitlines(keepends=True),
        fromfile=f"a/{relative}" if old is not None else "/dev/null",
        tofile=f"b/{relative}" if new is not None else "/dev/null",
    )
    return "".join(
        line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines
    )


def keep_service_files(
    service: Path,
    copy: Path,
    original: Snapshot,
    old_render: Mapping[str, bytes],
    new_render: Callable[[], Mapping[str, bytes]],
) -> list[str]:
    """Take back from the updated copy every file the update would write where the service has something
    the copy did not hold; one note per file a person must look at.

    - an ignored or untracked file (or folder) at a path the release starts to generate: the service's
      stays; the release's version goes beside it as `<path>.template-new` unless it is the same;
    - a path that is, or lies behind, a symlink or a submodule of the service: nothing is written there;
      when the release changes the file, the note carries the release's diff (old render -> new render).
    `new_render` is called only when the service has such a path (it renders the template once more)."""
    notes = []
    foreign: dict[str, tuple[str, str]] = {}  # behind a symlink or submodule: path -> (link, kind)
    updated = snapshot(copy)
    for relative in sorted(updated.files.keys() - original.files.keys()):
        obstacle = _obstacle(service, relative)
        if obstacle is None:
            continue
        release_version = updated.files[relative]
        (copy / relative).unlink()
        where, kind = obstacle
        if kind in {"symlink", "submodule"}:
            foreign[relative] = obstacle
        elif kind == "file":
            notes.append(
                f"{relative}: the release generates this file, but {where} is a file in this service: "
                "nothing was written; move the file away and update again to get the release's version"
            )
        elif (service / relative).is_file() and (service / relative).read_bytes() == release_version:
            continue  # the service already has the release's version: nothing to say
        else:
            notes.append(_keep_existing(service, copy, relative, release_version, kind))
    behind_links = {
        relative: obstacle
        for relative in sorted(old_render.keys() - original.files.keys())
        if (obstacle := _obstacle(service, relative)) and obstacle[1] in {"symlink", "submodule"}
    }
    foreign.update(behind_links)
    if foreign:
        new = new_render()
        for relative, (where, kind) in sorted(foreign.items()):
            if old_render.get(relative) == new.get(relative):
                continue
            position = "is" if where == relative else f"lies behind {where}, which is"
            notes.append(
                f"{relative}: not written because it {position} a {kind} in this service; the release "
                f"changes it (apply what fits where the {kind} points):\n"
                + _release_diff(relative, old_render.get(relative), new.get(relative))
            )
    return notes


def _keep_existing(service: Path, copy: Path, relative: str, release_version: bytes, kind: str) -> str:
    """The note for an ignored or untracked file the release would overwrite; its version goes beside."""
    beside = relative + TEMPLATE_NEW_SUFFIX
    if os.path.lexists(service / beside):
        return (
            f"{relative}: the release now generates this file and the service has its own ({kind}, untracked "
            f"or ignored), kept; the release's version was not written because {beside} exists already: "
            f"delete {beside} and update again to get it"
        )
    (copy / beside).write_bytes(release_version)
    return (
        f"{relative}: the release now generates this file and the service has its own ({kind}, untracked "
        f"or ignored): yours is kept, the release's version goes to {beside}; merge what you need into "
        f"{relative}, then delete {beside}"
    )


def _written_over(service: Path, before: Snapshot, relative: str) -> str | None:
    """Why writing or removing `relative` would touch something the update does not own, if it would."""
    obstacle = _obstacle(service, relative)
    if obstacle is None:
        return None
    where, kind = obstacle
    if kind == "existing file" and relative in before.files:
        return None
    return f"{where} is a {kind} the update did not expect"


def apply_to(service: Path, before: Snapshot, after: Snapshot) -> None:
    """Make the service folder's tracked files equal `after` (untracked/ignored files are left alone).

    The last line of defence: nothing is written when any write would land on a file that `before` did
    not hold or go through a symlink (ValueError naming the path); `keep_service_files` is where such
    paths are found and reported. A file checked out with CRLF (text eol=crlf) is written with CRLF."""
    writes = [
        relative
        for relative, content in after.files.items()
        if before.files.get(relative) != content or before.modes.get(relative) != after.modes[relative]
    ]
    removals = sorted(before.files.keys() - after.files.keys())
    for relative in writes + removals:
        if reason := _written_over(service, before, relative):
            raise ValueError(f"{relative}: not written, {reason}; the service was left unchanged")
    for relative in writes:
        target = service / relative
        content = after.files[relative]
        if relative in before.files and _checked_out_with_crlf(target, before.files[relative]):
            content = content.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
        target.chmod(after.modes[relative] & 0o7777)
    for relative in removals:
        target = service / relative
        target.unlink(missing_ok=True)
        for parent in target.parents:
            if parent == service or not parent.is_dir() or any(parent.iterdir()):
                break
            parent.rmdir()


def _checked_out_with_crlf(target: Path, committed: bytes) -> bool:
    """Git converts this file to CRLF on checkout (an eol attribute or core.autocrlf): it holds only LF
    line ends in git, only CRLF ones in the working tree."""
    if b"\n" not in committed or b"\r\n" in committed or not target.is_file():
        return False
    working = target.read_bytes()
    return working.count(b"\n") == working.count(b"\r\n") and working.replace(b"\r\n", b"\n") == committed


def unmerged(copy: Path) -> list[str]:
    return git(copy, "diff", "--name-only", "--diff-filter=U").stdout.split()
