"""Does the service's whole requirement set still resolve? (pip's resolver, nothing installed)

`pip install --dry-run --ignore-installed -r requirements-dev.txt` in the updated service finds what a
pin comparison cannot: a service pin that a template package's own requirements exclude. Answers are
cached by the requirement files' hash, so a fleet sharing requirements asks pip once, and a second run
not at all. Without an index to ask (offline), the check says so instead of passing.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from nexus_template.updating._cache import cache_folder, requirements_key
from nexus_template.updating._deps import ENTRY_FILE

__all__ = ["resolution_problem"]

_RESOLVE_TIMEOUT_S = 600
_CANNOT_RESOLVE = ("ResolutionImpossible", "conflicting dependencies", "No matching distribution found")


def resolution_problem(folder: Path) -> str | None:
    """None when the requirements resolve; else one line naming the packages (or saying pip could not
    answer)."""
    if not (folder / ENTRY_FILE).is_file():
        return None
    answer = cache_folder() / "resolved" / requirements_key(folder, sys.version)
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
        # pip names the files by their path in the isolated copy: name them as the service does
        stderr = pip.stderr.replace(f"{folder}/", "")
        errors = [line for line in stderr.splitlines() if line.startswith("ERROR")] or ["(no message)"]
        if not any(marker in stderr for marker in _CANNOT_RESOLVE):
            return f"requirements not checked, pip could not answer: {errors[-1]}"  # not cached: try again
        problem = f"pip cannot resolve {ENTRY_FILE}: {errors[0].removeprefix('ERROR: ')}"
    answer.parent.mkdir(parents=True, exist_ok=True)
    answer.write_text(problem)
    return problem or None
