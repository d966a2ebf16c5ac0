"""Edits of a file's text that fail when what they edit is not there.

A fixture that edits service or template code with a plain `str.replace` becomes a silent no-op when a
template change rewrites the text it looks for, and the story it sets up is then never told. These
helpers replace and fail, naming the text and the file, unless `old` occurs exactly `count` times.
"""

from __future__ import annotations

import re
from pathlib import Path

__all__ = ["PLATFORM_DOCSTRING", "edit_file", "edit_file_lines", "replaced"]

# the docstring of the template-owned app/__main__.py, which update stories edit to make conflicts
PLATFORM_DOCSTRING = (
    '"""Production entrypoint: `python -m app` serves the app on SERVICE_PORT, draining on SIGTERM."""'
)


def replaced(text: str, old: str, new: str, *, count: int = 1, where: str = "the text") -> str:
    """`text` with each of exactly `count` occurrences of `old` replaced by `new`."""
    found = text.count(old)
    if found != count:
        raise AssertionError(f"expected {count} occurrence(s) of {old!r} in {where}, found {found}")
    return text.replace(old, new)


def edit_file(path: Path, *edits: tuple[str, str], count: int = 1) -> None:
    """Apply each (old, new) of `edits` in turn to the file at `path` (`count` occurrences of each)."""
    text = path.read_text()
    for old, new in edits:
        text = replaced(text, old, new, count=count, where=str(path))
    path.write_text(text)


def edit_file_lines(path: Path, pattern: str, new: str, *, count: int = 1) -> None:
    """Replace the lines matching the regular expression `pattern` (exactly `count` of them) with `new`."""
    text, found = re.subn(pattern, new, path.read_text(), flags=re.MULTILINE)
    if found != count:
        raise AssertionError(f"expected {count} line(s) matching {pattern!r} in {path}, found {found}")
    path.write_text(text)
