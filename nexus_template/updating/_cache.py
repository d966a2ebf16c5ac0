"""Where update results worth keeping between runs live, keyed by the requirement files they depend on."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from nexus_template.updating._deps import requirement_files

__all__ = ["cache_folder", "requirements_key"]


def cache_folder() -> Path:
    """`$NEXUS_TEMPLATE_CACHE`, else `$XDG_CACHE_HOME/nexus-template`, else `~/.cache/nexus-template`."""
    if os.environ.get("NEXUS_TEMPLATE_CACHE"):
        return Path(os.environ["NEXUS_TEMPLATE_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "nexus-template"


def requirements_key(folder: Path, *salt: str) -> str:
    """A short hash of the service's requirement files (names and contents) and `salt`."""
    digest = hashlib.sha256("\0".join(salt).encode())
    for name in requirement_files(folder):
        digest.update(name.encode() + b"\0" + (folder / name).read_bytes() + b"\0")
    return digest.hexdigest()[:16]
