"""Do the service's updated requirements still hold? Pins compared, the whole set resolved, the lock refreshed.

`pip install --dry-run --ignore-installed -r requirements-dev.txt` in the updated service finds what a
pin comparison cannot: a service pin that a template package's own requirements exclude. Answers are
cached by the requirement files' hash, so a fleet sharing requirements asks pip once, and a second run
not at all. An index that cannot be reached is an outage (`_index`): said so, and not cached.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from nexus_template.updating._cache import cache_folder, requirements_key, store
from nexus_template.updating._deps import ENTRY_FILE, pin_clashes
from nexus_template.updating._index import IndexUnreachable, index_settings, pip_options, pip_outage
from nexus_template.updating._lock import LockNotRefreshed, lock_command, refresh_lock
from nexus_template.updating._result import UpdateResult

__all__ = ["check_requirements", "resolution_problem"]

_RESOLVE_TIMEOUT_S = 600
_CANNOT_RESOLVE = ("ResolutionImpossible", "conflicting dependencies", "No matching distribution found")
_NOT_CHECKED = "requirements not checked"
_NO_VERSIONS = "(from versions: none)"


def check_requirements(
    copy: Path, result: UpdateResult, *, resolve: bool, offline: bool, locking_module: str | None
) -> None:
    """Compare the pins, ask pip whether the set resolves (`resolve`, and not `offline`) and, when
    nothing clashes or conflicts, refresh requirements.lock (`offline`: only from the cache) with the
    release's `locking_module` (see `refresh_lock`). Clashes go to `result.dependency_clashes`; checks
    that could not be made, to `result.notes`."""
    result.dependency_clashes = pin_clashes(copy)
    if resolve and not offline and not result.dependency_clashes:
        try:
            problem = resolution_problem(copy)
        except IndexUnreachable as outage:
            # the lock refresh needs the same index: asking it too would only wait a second time
            result.notes.append(
                f"{_NOT_CHECKED} and requirements.lock not refreshed: {outage}; run the update again when "
                "the index answers, or with --offline"
            )
            return
        if problem:
            (result.notes if problem.startswith(_NOT_CHECKED) else result.dependency_clashes).append(problem)
    if result.conflicts or result.dependency_clashes:
        return
    try:
        if problem := refresh_lock(copy, locking_module, offline=offline):
            result.dependency_clashes.append(problem)
    except LockNotRefreshed as reason:
        result.notes.append(
            f"requirements.lock not refreshed: {reason}; refresh it with `{lock_command(copy)}` in the "
            "service when the package index answers"
        )


def resolution_problem(folder: Path) -> str | None:
    """None when the requirements resolve; else one line naming the packages (or saying pip could not
    answer). Raises IndexUnreachable when pip could not reach the package index."""
    if not (folder / ENTRY_FILE).is_file():
        return None
    # another index may answer otherwise (a mirror, a login that expired): its answer is cached apart
    answer = cache_folder() / "resolved" / requirements_key(folder, sys.version, index_settings())
    if answer.is_file():
        return answer.read_text() or None
    pip = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--dry-run",
            "--ignore-installed",
            "--quiet",
            "--disable-pip-version-check",
            *pip_options(),
            "-r",
            ENTRY_FILE,
        ],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=_RESOLVE_TIMEOUT_S,
        check=False,
    )
    if pip.returncode == 0:
        problem = ""
    else:
        # an unreachable index looks like a clash to pip ("litestar==2.25.0 (from versions: none)")
        if outage := pip_outage(pip.stderr):
            raise IndexUnreachable(outage)  # not cached: the next run asks again
        # pip names the files by their path in the isolated copy: name them as the service does
        stderr = pip.stderr.replace(f"{folder}/", "")
        errors = [line for line in stderr.splitlines() if line.startswith("ERROR")] or ["(no message)"]
        if not any(marker in stderr for marker in _CANNOT_RESOLVE):
            return f"{_NOT_CHECKED}, pip could not answer: {errors[-1]}"  # not cached: try again
        problem = f"pip cannot resolve {ENTRY_FILE}: {errors[0].removeprefix('ERROR: ')}"
        if _NO_VERSIONS in stderr:
            # a name the index does not know, or an index that answers 403/404 to everything (an expired
            # login, a wrong URL): said, and asked again next time rather than remembered
            return (
                f"{problem} (the package index has no version of it at all: check the name and PIP_INDEX_URL)"
            )
    store(answer, problem.encode())
    return problem or None
