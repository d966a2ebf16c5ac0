"""Conflicts an update leaves for a person: conflict markers and rejected hunks (`.rej`)."""

from __future__ import annotations

import re

__all__ = ["has_markers", "marked_or_rejected"]

MARKER = re.compile(rb"^(<{7}|>{7}) ", re.MULTILINE)


def has_markers(content: bytes) -> bool:
    return bool(MARKER.search(content))


def marked_or_rejected(files: dict[str, bytes]) -> list[str]:
    """Paths among `files` holding conflict markers, or naming a `.rej` file (the conflict is the file it
    rejects)."""
    found = set()
    for relative, content in files.items():
        if relative.endswith(".rej"):
            found.add(relative.removesuffix(".rej"))
        elif len(content) < 2_000_000 and has_markers(content):
            found.add(relative)
    return sorted(found)
