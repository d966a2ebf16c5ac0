"""What `copier update` would silently get wrong, and the repair for each.

- A file the release removes or renames is deleted even when the service edited it: the edited
  version is put back where it was, and reported.
- A binary file the service customised is overwritten: the service's version stays, the release's
  version is written next to it as `<file>.rej` (which the service's contract tests refuse).
- A file converted to CRLF conflicts as a whole with the template's LF lines: it is merged as LF and
  converted back.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

from copier import run_copy

from nexus_template.updating._isolated import Snapshot, snapshot

__all__ = ["OldRender", "is_binary", "keep_binary_edits", "keep_removed_edits", "restore_crlf", "to_lf"]

_MIN_RENAME_SIMILARITY = 0.5


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


def _renamed_to(old_content: bytes, added: dict[str, bytes], relative: str) -> str | None:
    """The added file most like the removed one (a release's rename), if any is alike enough."""
    best, best_ratio = None, _MIN_RENAME_SIMILARITY
    old_text = old_content.decode(errors="replace")
    for candidate, content in added.items():
        if is_binary(content) != is_binary(old_content):
            continue
        ratio = difflib.SequenceMatcher(None, old_text, content.decode(errors="replace")).quick_ratio()
        if ratio > best_ratio or (ratio == best_ratio and Path(candidate).name == Path(relative).name):
            best, best_ratio = candidate, ratio
    return best


def keep_removed_edits(
    copy: Path, before: Snapshot, after: Snapshot, old: OldRender, version: str
) -> list[str]:
    """Put back every edited file the update deleted; one message per file."""
    messages = []
    added = {path: content for path, content in after.files.items() if path not in before.files}
    for relative in sorted(before.files.keys() - after.files.keys()):
        content = before.files[relative]
        if not old.edited(relative, content):
            continue
        target = copy / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
        target.chmod(before.modes[relative] & 0o7777)
        after.files[relative], after.modes[relative] = content, before.modes[relative]
        new_path = _renamed_to(old.files.get(relative, b""), added, relative)
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
