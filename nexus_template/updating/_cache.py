"""Where update results worth keeping between runs live, keyed by the inputs they depend on."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from nexus_template.updating._deps import ENTRY_FILE, requirement_files

__all__ = ["cache_folder", "requirements_key", "store"]


def cache_folder() -> Path:
    """`$NEXUS_TEMPLATE_CACHE`, else `$XDG_CACHE_HOME/nexus-template`, else `~/.cache/nexus-template`."""
    if os.environ.get("NEXUS_TEMPLATE_CACHE"):
        return Path(os.environ["NEXUS_TEMPLATE_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "nexus-template"


def requirements_key(folder: Path, *salt: str, entry: str = ENTRY_FILE) -> str:
    """A short hash of `entry` and the requirement files it includes (names and contents) and `salt`."""
    digest = hashlib.sha256("\0".join(salt).encode())
    for name in requirement_files(folder, entry):
        digest.update(name.encode() + b"\0" + (folder / name).read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def store(entry: Path, content: bytes) -> None:
    """Write a cache entry whole (renamed into place): a reader never sees half of it."""
    entry.parent.mkdir(parents=True, exist_ok=True)
    partial = entry.with_name(f"{entry.name}.{os.getpid()}")
    partial.write_bytes(content)
    partial.replace(entry)
