"""What `copier update` would silently get wrong, and the repair for each.

- A file the release removes or renames is deleted even when the service edited it: the edited
  version is put back where it was, and reported.
- A binary file the service customised is overwritten: the service's version stays, the release's
  version is written next to it as `<file>.rej` (which the service's contract tests refuse).
- A file converted to CRLF conflicts as a whole with the template's LF lines: it is merged as LF and
  converted back.
- A seed (`_skip_if_exists`: image/build.sh, the compose override, ...) the service deleted is created
  again: it stays deleted.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

from copier import run_copy

from nexus_template.updating._isolated import Snapshot, snapshot

__all__ = [
    "MIN_RENAME_SIMILARITY",
    "OldRender",
    "is_binary",
    "keep_binary_edits",
    "keep_deleted_seeds",
    "keep_removed_edits",
    "renamed_to",
    "restore_crlf",
    "to_lf",
]

# A removed file is "renamed to" an added one when at least half of its characters match (difflib's
# ratio(), the share git's rename detection also starts from). Below that the advice is "removed".
MIN_RENAME_SIMILARITY = 0.5
# ratio() costs up to the product of the two lengths (2 s for two unrelated 60 kB files, 0.07 s at 16 kB):
# texts up to this size are compared character by character (a rename often changes a name on every line),
# longer ones line by line (far fewer items)...
_CHARACTERS_COMPARED = 16 * 1024
# ... and files over this size not at all (their advice is "removed", which keeps the file all the same)
_MAX_RENAME_COMPARED = 1024 * 1024


def is_binary(content: bytes) -> bool:
    return b"\0" in content[:8000]


def _is_crlf(content: bytes) -> bool:
    return b"\r\n" in content and content.count(b"\n") == content.count(b"\r\n") and not is_binary(content)


def to_lf(folder: Path) -> list[str]:
    """Convert the CRLF text files under `folder` to LF; return their relative paths."""
    converted = []
    for relative, content in snapshot(folder).files.items():
        if _is_crlf(content):
            (folder / relative).write_bytes(content.replace(b"\r\n", b"\n"))
            converted.append(relative)
    return converted


def restore_crlf(folder: Path, converted: list[str]) -> None:
    for relative in converted:
        path = folder / relative
        if path.is_file() and b"\r\n" not in (content := path.read_bytes()):
            path.write_bytes(content.replace(b"\n", b"\r\n"))


class OldRender:
    """The service as its recorded template version rendered it: rendered only when a question needs it."""

    def __init__(self, answers: dict[str, Any], captured: dict[str, bytes] | None = None) -> None:
        self._answers = answers
        self._files = captured or None

    @property
    def files(self) -> dict[str, bytes]:
        if self._files is None:
            with TemporaryDirectory(prefix="nexus-old-render-") as temp:
                run_copy(
                    str(self._answers["_src_path"]),
                    temp,
                    data={name: value for name, value in self._answers.items() if not name.startswith("_")},
                    defaults=True,
                    unsafe=True,
                    quiet=True,
                    vcs_ref=str(self._answers["_commit"]),
                )
                self._files = snapshot(Path(temp)).files
        return self._files

    def edited(self, relative: str, content: bytes) -> bool:
        """Did the service change this file from what the template gave it?"""
        return self.files.get(relative) != content


def _similarity(old: str, new: str, at_least: float) -> float:
    """difflib's ratio() of the two texts, or 0.0 once one of its cheap upper bounds shows it is below
    `at_least` (quick_ratio() alone called an unrelated 600-character file 0.6 alike where ratio() says 0.16)."""
    if max(len(old), len(new)) > _CHARACTERS_COMPARED:
        matcher = difflib.SequenceMatcher(None, old.splitlines(keepends=True), new.splitlines(keepends=True))
    else:
        matcher = difflib.SequenceMatcher(None, old, new)
    if matcher.real_quick_ratio() < at_least or matcher.quick_ratio() < at_least:
        return 0.0
    return matcher.ratio()


def renamed_to(old_content: bytes, added: dict[str, bytes], relative: str) -> str | None:
    """The added file most like the removed one (a release's rename), if any is at least
    MIN_RENAME_SIMILARITY alike; between equals, the one with the removed file's name."""
    if not old_content or len(old_content) > _MAX_RENAME_COMPARED:
        return None
    best, best_ratio = None, MIN_RENAME_SIMILARITY
    old_text = old_content.decode(errors="replace")
    for candidate, content in sorted(added.items()):
        if is_binary(content) != is_binary(old_content) or len(content) > _MAX_RENAME_COMPARED:
            continue
        ratio = _similarity(old_text, content.decode(errors="replace"), best_ratio)
        if ratio > best_ratio or (
            ratio == best_ratio and (best is None or Path(candidate).name == Path(relative).name)
        ):
            best, best_ratio = candidate, ratio
    return best


def keep_removed_edits(
    copy: Path, before: Snapshot, after: Snapshot, old: OldRender, version: str, *, released: set[str]
) -> list[str]:
    """Put back every edited file the update deleted; one message per file, and one per edited file the
    release removes that a migration of the release kept (`released`: the paths the new version renders)."""
    messages = []
    added = {path: content for path, content in after.files.items() if path not in before.files}
    # (`released` is empty when copier rendered no new version: then nothing is known to be removed)
    kept_by_migration = {
        relative
        for relative in before.files.keys() & after.files.keys()
        if released
        and relative in old.files
        and relative not in released
        and after.files[relative] == before.files[relative]
    }
    for relative in sorted((before.files.keys() - after.files.keys()) | kept_by_migration):
        content = before.files[relative]
        if not old.edited(relative, content):
            continue
        target = copy / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
        target.chmod(before.modes[relative] & 0o7777)
        after.files[relative], after.modes[relative] = content, before.modes[relative]
        new_path = renamed_to(old.files.get(relative, b""), added, relative)
        if new_path:
            messages.append(
                f"{relative}: renamed to {new_path} by {version} but edited here: your version is kept at "
                f"{relative}; move your edits into {new_path}, then delete {relative}"
            )
        else:
            messages.append(
                f"{relative}: removed by {version} but edited here: your version is kept; "
                "delete it once nothing needs it"
            )
    return messages


def keep_binary_edits(copy: Path, before: Snapshot, after: Snapshot, old: OldRender) -> list[str]:
    """Keep customised binary files the update overwrote; when the release changed them too, its version
    goes to `<file>.rej` and the file is a conflict."""
    conflicts = []
    for relative, content in before.files.items():
        new = after.files.get(relative)
        if new is None or new == content or not is_binary(content) or not old.edited(relative, content):
            continue
        (copy / relative).write_bytes(content)
        after.files[relative] = content
        if new != old.files.get(relative):  # the release changed it too: both versions matter
            (copy / f"{relative}.rej").write_bytes(new)
            after.files[f"{relative}.rej"], after.modes[f"{relative}.rej"] = new, 0o100644
            conflicts.append(relative)
    return conflicts


def keep_deleted_seeds(copy: Path, before: Snapshot, after: Snapshot, old: OldRender) -> None:
    """Delete again each file the update created that the service's own template version had generated.

    The service no longer having such a file means it deleted it (or never took it): copier respects that
    for every file except the `_skip_if_exists` seeds, which it re-creates on each update. A file the
    recorded version never generated (a seed a newer release introduces) is left created."""
    for relative in sorted(after.files.keys() - before.files.keys()):
        if relative in old.files:
            (copy / relative).unlink()
            del after.files[relative], after.modes[relative]
