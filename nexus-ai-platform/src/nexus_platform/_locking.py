"""requirements.lock: every runtime distribution of the image, pinned with hashes.

The lock is generated from requirements.txt (the platform's pins, which include requirements-service.txt)
by `python -m nexus_platform lock` (uv, universal: one lock for every platform and supported Python). The
image installs it with --require-hashes, so two builds months apart run the same code, and a package
the lock lacks fails the build instead of floating. `python -m nexus_platform lock --check` (offline, and a
contract test) fails when a pin of the requirement files is missing from the lock or differs.
"""

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

__all__ = ["LOCK_FILE", "lock_problems", "write_lock"]

LOCK_FILE = "requirements.lock"
REQUIREMENTS = "requirements.txt"
HEADER = (
    "# The image's runtime dependencies, pinned with hashes: generated from requirements.txt (and\n"
    "# requirements-service.txt, which it includes) by `python -m nexus_platform lock`. Refresh it after\n"
    "# changing either file or taking a template update; the image installs exactly this (--require-hashes).\n"
)
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?\s*==\s*([^\s;\\]+)")
_INCLUDE = re.compile(r"^-r\s+(\S+)")


def _name(distribution: str) -> str:
    """PEP 503 normalised name."""
    return re.sub(r"[-_.]+", "-", distribution).lower()


def _pins(path: Path, seen: set[Path] | None = None) -> dict[str, str]:
    """name -> version of every `name==version` line in `path` and the files it includes with -r."""
    seen = seen if seen is not None else set()
    if path in seen or not path.is_file():
        return {}
    seen.add(path)
    pins: dict[str, str] = {}
    for text in path.read_text().splitlines():
        line = text.split(" #", 1)[0].strip()
        if include := _INCLUDE.match(line):
            pins |= _pins(path.parent / include.group(1), seen)
        elif pin := _PIN.match(line):
            pins[_name(pin.group(1))] = pin.group(2)
    return pins


def _locked(lock: Path) -> dict[str, tuple[str, int]]:
    """name -> (version, number of hashes) of each entry of the lock."""
    entries: dict[str, tuple[str, int]] = {}
    current = None
    for line in lock.read_text().splitlines():
        if pin := _PIN.match(line):
            current = _name(pin.group(1))
            entries[current] = (pin.group(2), 0)
        elif current and line.strip().startswith("--hash="):
            version, hashes = entries[current]
            entries[current] = (version, hashes + 1)
    return entries


def lock_problems(root: Path) -> list[str]:
    """What makes the lock out of date with the requirement files, one sentence each (empty: current)."""
    lock = root / LOCK_FILE
    if not lock.is_file():
        return [f"{LOCK_FILE} is missing: run `python -m nexus_platform lock`"]
    locked = _locked(lock)
    problems = [
        f"{name}=={version} is pinned in the requirement files but "
        + (f"locked at {locked[name][0]}" if name in locked else f"missing from {LOCK_FILE}")
        for name, version in sorted(_pins(root / REQUIREMENTS).items())
        if locked.get(name, ("", 0))[0] != version
    ]
    problems += [f"{name} has no hash in {LOCK_FILE}" for name, (_, hashes) in locked.items() if not hashes]
    if problems:
        problems.append("refresh the lock with `python -m nexus_platform lock`")
    return problems


def _minimum_python(root: Path) -> str:
    requires: str = tomllib.loads((root / "pyproject.toml").read_text())["project"]["requires-python"]
    return requires.removeprefix(">=")


def write_lock(root: Path) -> None:
    """Resolve requirements.txt with uv into requirements.lock; versions already locked are kept.
    Raises CalledProcessError, whose `stderr` is uv's explanation (it names the packages), when the
    requirements cannot be resolved."""
    uv = shutil.which("uv") or str(Path(sys.executable).with_name("uv"))
    body = root / f".{LOCK_FILE}.body"
    lock = root / LOCK_FILE
    if lock.is_file():  # uv keeps the versions of an existing output file where they still fit
        body.write_text(lock.read_text())
    # pip's PIP_FIND_LINKS (folders or pages with distributions no index has, such as a nexus-ai-platform
    # wheel built from the template's checkout) is honoured here too, so one setting serves both tools
    find_links = [f"--find-links={place}" for place in os.environ.get("PIP_FIND_LINKS", "").split()]
    try:
        subprocess.run(
            [
                uv, "pip", "compile", "--quiet", "--universal", "--generate-hashes", "--no-header",
                "--no-annotate", "--python-version", _minimum_python(root), *find_links, REQUIREMENTS,
                "--output-file", body.name,
            ],
            cwd=root,
            check=True,
            capture_output=True,
            text=True,
        )  # fmt: skip
        lock.write_text(HEADER + body.read_text())
    finally:
        body.unlink(missing_ok=True)
