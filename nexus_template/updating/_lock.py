"""The service's `requirements.lock` follows its updated requirements.

From v0.4.0 the lock is written by the platform library's locking module (`python -m nexus_platform
lock` in a service). The update runs that module as the release has it, from the template checkout the
update rendered (`nexus-ai-platform/src/nexus_platform/_locking.py` at the new version): the same uv options
and header as the library the service now pins, with nothing to install first, so an update stays fast and,
with a cached refresh, offline. A release before the library carried the module in the service
(`app/nexus/_locking.py`, template-owned, so already the new version; `app/nexus/locking.py` before the
platform's modules were private), which is used when it is there. Services rendered before locks existed
have none. The module honours PIP_FIND_LINKS (a wheelhouse holding nexus-ai-platform where no index has it).

A refresh is cached by the hash of what `uv pip compile` reads (the requirement files, the existing lock,
the minimum Python, uv's version, and the locking module that holds its options and the lock's header), so
a fleet whose services share requirements asks the index once, and a second run not at all. The index is
no part of the key: a lock holds the pins and hashes of real files, whichever index served them.
"""

from __future__ import annotations

import os
import runpy
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from tempfile import TemporaryDirectory

from nexus_template.updating._cache import cache_folder, requirements_key, store
from nexus_template.updating._index import uv_environment, uv_outage

__all__ = ["LIBRARY_LOCKING_MODULE", "LockNotRefreshed", "lock_command", "refresh_lock"]

LOCK_FILE = "requirements.lock"
# where a release that has the platform library keeps its locking module, in the template repository
LIBRARY_LOCKING_MODULE = "nexus-ai-platform/src/nexus_platform/_locking.py"
_VENDORED = ("app/nexus/_locking.py", "app/nexus/locking.py")
_LOCKED_FROM = "requirements.txt"


class LockNotRefreshed(Exception):
    """requirements.lock was left as it was; the message says why."""


def lock_command(service: Path) -> str:
    """The command that refreshes the service's lock by hand."""
    vendored = any((service / path).is_file() for path in _VENDORED)
    return f"python -m {'app.nexus' if vendored else 'nexus_platform'} lock"


def refresh_lock(service: Path, locking_module: str | None, *, offline: bool = False) -> str | None:
    """Refresh requirements.lock with the service's own locking module, else `locking_module` (the source
    of the release's library module); the clash that stops it, or None. With `offline` the index is not
    asked: only a cached refresh is written. Raises LockNotRefreshed (offline without a cached refresh, or
    the index unreachable)."""
    vendored = [service / path for path in _VENDORED if (service / path).is_file()]
    module = vendored[0].read_text() if vendored else locking_module
    if module is None or not (service / _LOCKED_FROM).is_file():
        return None
    cached = cache_folder() / "locks" / _inputs_key(service, module)
    if cached.is_file():
        (service / LOCK_FILE).write_bytes(cached.read_bytes())
        return None
    if offline:
        raise LockNotRefreshed("--offline, and these requirements were never locked on this machine")
    try:
        with _environment(uv_environment()):
            _write_lock(module)(service)
    except subprocess.CalledProcessError as error:
        if outage := uv_outage(error.stderr or ""):
            raise LockNotRefreshed(outage) from error  # not cached: the next run asks again
        # uv explains the clash in its last lines ("Because litestar depends on multidict>=6.0.2 ...")
        explanation = " ".join(line.strip() for line in (error.stderr or "").strip().splitlines()[-6:])
        return f"requirements.lock cannot be refreshed, uv cannot resolve the requirements: {explanation}"
    store(cached, (service / LOCK_FILE).read_bytes())
    return None


def _write_lock(source: str) -> Callable[[Path], None]:
    """The `write_lock(root)` of a locking module's source (standard library only: it needs no install)."""
    with TemporaryDirectory(prefix="nexus-locking-") as folder:
        module = Path(folder) / "_locking.py"
        module.write_text(source)
        write_lock: Callable[[Path], None] = runpy.run_path(str(module))["write_lock"]
    return write_lock


def _inputs_key(service: Path, module: str) -> str:
    """The hash of everything the locking module's `uv pip compile` reads or is told."""
    lock = service / LOCK_FILE
    return requirements_key(
        service,
        lock.read_text() if lock.is_file() else "",  # uv keeps the versions already locked where they fit
        _requires_python(service),
        _uv_version(),
        module,
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
