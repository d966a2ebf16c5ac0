"""The service's `requirements.lock` follows its updated requirements.

The service's own locking module (`app/nexus/_locking.py`, template-owned, so already the new version)
refreshes it with uv, a dependency of this tool (`app/nexus/locking.py` in a release before the platform's
modules were private); services rendered before locks existed have none.

A refresh is cached by the hash of what `uv pip compile` reads (the requirement files, the existing lock,
the minimum Python, uv's version, and the locking module that holds its options and the lock's header),
so a fleet whose services share requirements asks the index once, and a second run not at all.
"""

from __future__ import annotations

import os
import runpy
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

from nexus_template.updating._cache import cache_folder, requirements_key, store
from nexus_template.updating._index import uv_environment, uv_outage

__all__ = ["LockNotRefreshed", "refresh_lock"]

LOCK_FILE = "requirements.lock"
_LOCKED_FROM = "requirements.txt"


class LockNotRefreshed(Exception):
    """requirements.lock was left as it was; the message says why."""


def refresh_lock(service: Path, *, offline: bool = False) -> str | None:
    """Refresh requirements.lock; the clash that stops it, or None. With `offline` the index is not asked:
    only a cached refresh is written. Raises LockNotRefreshed (offline without a cached refresh, or the
    index unreachable)."""
    found = [
        path for name in ("_locking.py", "locking.py") if (path := service / "app" / "nexus" / name).is_file()
    ]
    if not found:
        return None
    module = found[0]
    cached = cache_folder() / "locks" / _inputs_key(service, module)
    if cached.is_file():
        (service / LOCK_FILE).write_bytes(cached.read_bytes())
        return None
    if offline:
        raise LockNotRefreshed("--offline, and these requirements were never locked on this machine")
    try:
        with _environment(uv_environment()):
            runpy.run_path(str(module))["write_lock"](service)
    except subprocess.CalledProcessError as error:
        if outage := uv_outage(error.stderr or ""):
            raise LockNotRefreshed(outage) from error  # not cached: the next run asks again
        # uv explains the clash in its last lines ("Because litestar depends on multidict>=6.0.2 ...")
        explanation = " ".join(line.strip() for line in (error.stderr or "").strip().splitlines()[-6:])
        return f"requirements.lock cannot be refreshed, uv cannot resolve the requirements: {explanation}"
    store(cached, (service / LOCK_FILE).read_bytes())
    return None


def _inputs_key(service: Path, module: Path) -> str:
    """The hash of everything the locking module's `uv pip compile` reads or is told."""
    lock = service / LOCK_FILE
    return requirements_key(
        service,
        lock.read_text() if lock.is_file() else "",  # uv keeps the versions already locked where they fit
        _requires_python(service),
        _uv_version(),
        module.read_text(),
        entry=_LOCKED_FROM,
    )


def _requires_python(service: Path) -> str:
    pyproject = service / "pyproject.toml"
    if not pyproject.is_file():
        return ""
    return str(tomllib.loads(pyproject.read_text()).get("project", {}).get("requires-python", ""))


@cache
def _uv_version() -> str:
    """`uv --version` of the uv the locking module runs (it looks for it the same way)."""
    uv = shutil.which("uv") or str(Path(sys.executable).with_name("uv"))
    return subprocess.run([uv, "--version"], capture_output=True, text=True, check=True).stdout.strip()


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """`values` in os.environ for the block: the locking module starts uv without an `env` of its own."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
