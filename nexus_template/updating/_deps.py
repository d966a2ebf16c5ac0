"""Do the service's requirement files still agree? (`requirements-dev.txt` includes the others.)

The template pins its packages in `requirements.txt`; the service pins its own in
`requirements-service.txt`; a release that starts pinning a package the service also pins at another
version makes `pip install -r requirements-dev.txt` (image build, CI) fail. Found here without a network.
"""

from __future__ import annotations

import re
from pathlib import Path

__all__ = ["ENTRY_FILE", "pin_clashes", "requirement_files"]

ENTRY_FILE = "requirements-dev.txt"
_PIN = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*==\s*([^\s;#]+)\s*(?:;([^#]*))?")
_INCLUDE = re.compile(r"^\s*(?:-r|--requirement)\s*=?\s*(\S+)")


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_files(folder: Path, entry: str = ENTRY_FILE) -> list[str]:
    """`entry` and every file it includes with -r, in order, each once (relative paths)."""
    found: list[str] = []
    pending = [entry]
    while pending:
        name = pending.pop(0)
        path = folder / name
        if name in found or not path.is_file():
            continue
        found.append(name)
        for line in path.read_text(errors="replace").splitlines():
            include = _INCLUDE.match(line)
            if include:
                pending.append((Path(name).parent / include.group(1)).as_posix())
    return found


def pin_clashes(folder: Path) -> list[str]:
    """One sentence per package pinned to two different versions, in two requirement files or in one."""
    # (package, environment marker) -> (file, version) pins, in order, each once: pins under different
    # markers (`numpy==1.26.4 ; python_version < "3.12"` and one for 3.12) apply to different installs
    pins: dict[tuple[str, str], dict[tuple[str, str], None]] = {}
    for name in requirement_files(folder):
        for line in (folder / name).read_text(errors="replace").splitlines():
            pin = _PIN.match(line)
            if pin:
                marker = " ".join((pin.group(3) or "").split())
                pins.setdefault((_normalize(pin.group(1)), marker), {})[(name, pin.group(2))] = None
    return [
        f"{package} is pinned to " + " and ".join(f"{version} in {file}" for file, version in found)
        for (package, _), found in sorted(pins.items())
        if len({version for _, version in found}) > 1
    ]
