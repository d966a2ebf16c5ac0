"""`--test`: the service's tests in a virtual environment built from its updated requirements.

Environments are cached by the hash of the requirement files (and the Python used), so a fleet whose
services share requirements builds one, and a second run builds none.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from nexus_template.updating._cache import cache_folder, requirements_key
from nexus_template.updating._deps import ENTRY_FILE
from nexus_template.updating._index import pip_options, pip_outage

__all__ = ["run_tests"]

_TEST_TIMEOUT_S = 1800


def _python_for(version: str | None) -> str:
    """The service's Python (`python3.12`) when this machine has it, else the one running this tool."""
    return (version and shutil.which(f"python{version}")) or sys.executable


def _environment(service: Path, python_version: str | None, *, offline: bool) -> tuple[Path | None, str]:
    """(the environment's python, "") or (None, why it could not be built); `offline`: only one built before."""
    python = _python_for(python_version)
    venv = cache_folder() / "venvs" / requirements_key(service, python)
    if (venv / "complete").is_file():
        return venv / "bin" / "python", ""
    if offline:
        return (
            None,
            "the tests were not run: --offline, and no environment for these requirements was built here",
        )
    building = venv.with_name(f"{venv.name}.{os.getpid()}")
    shutil.rmtree(building, ignore_errors=True)
    subprocess.run([python, "-m", "venv", str(building)], check=True, capture_output=True)
    install = subprocess.run(
        [
            str(building / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            *pip_options(),
            "-r",
            ENTRY_FILE,
        ],
        cwd=service,
        capture_output=True,
        text=True,
        check=False,
    )
    if install.returncode != 0:
        shutil.rmtree(building, ignore_errors=True)
        if outage := pip_outage(install.stderr):
            return None, f"the tests were not run: {outage}"
        errors = [line for line in install.stderr.splitlines() if line.startswith("ERROR")]
        return None, f"pip install -r {ENTRY_FILE} fails: " + " ".join(errors[-3:] or ["(no message)"])
    (building / "complete").write_text("")
    try:
        building.rename(venv)
    except OSError:  # another run built the same environment meanwhile (it may be running tests in it)
        shutil.rmtree(building, ignore_errors=True)
    return venv / "bin" / "python", ""


def run_tests(
    service: Path, python_version: str | None, pytest_args: list[str], *, offline: bool = False
) -> tuple[str, str]:
    """("passed" | "failed", what went wrong) after running the service's tests in its environment
    (`offline`: only in one built before, the package index is not asked)."""
    python, problem = _environment(service, python_version, offline=offline)
    if python is None:
        return "failed", problem
    result = subprocess.run(
        [str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", *pytest_args],
        cwd=service,
        capture_output=True,
        text=True,
        timeout=_TEST_TIMEOUT_S,
        check=False,
    )
    if result.returncode == 0:
        return "passed", ""
    print(f"tests of {service.name} failed:\n{result.stdout[-3000:]}{result.stderr[-2000:]}", file=sys.stderr)
    summary = (result.stdout.strip().splitlines() or ["pytest failed"])[-1]
    return "failed", f"its tests fail after the update ({summary})"
