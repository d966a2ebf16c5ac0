"""Taking template updates safely: one service, or every service under a folder.

For each service (a folder whose `.copier-answers.yml` was written by this template), one at a time:
refuse unless its folder is clean in git; run `copier update`; find conflicts (unmerged paths, conflict
markers, `.rej` files); optionally run its tests; report. A copier failure rolls the folder back to its
clean state; a conflict is left in place for a person to resolve, and reported.
"""

from __future__ import annotations

import os
import re
import runpy
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ANSWERS_FILE = ".copier-answers.yml"
_MARKER = re.compile(r"^(<{7} |>{7} |={7}$)", re.MULTILINE)


@dataclass
class UpdateResult:
    service: Path
    before: str = "?"
    after: str = "?"
    changed: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    tests: str = "not run"
    status: str = "ok"
    detail: str = ""

    @property
    def failed(self) -> bool:
        return self.status != "ok" or bool(self.conflicts) or self.tests == "failed"


def _git(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)


def template_version(service: Path) -> str:
    answers = yaml.safe_load((service / ANSWERS_FILE).read_text()) or {}
    return str(answers.get("_commit", "?"))


def find_services(folder: Path) -> list[Path]:
    """Folders under `folder` holding an answers file of this template (it records `service_name`)."""
    services = []
    for answers in sorted(folder.rglob(ANSWERS_FILE)):
        if any(part in {".git", ".venv", "node_modules"} for part in answers.parts):
            continue
        data = yaml.safe_load(answers.read_text()) or {}
        if isinstance(data, dict) and "service_name" in data and "_src_path" in data:
            services.append(answers.parent)
    return services


def _changed_paths(service: Path) -> list[Path]:
    """Absolute paths that git reports as changed or untracked in the service folder (and only there)."""
    top = Path(_git(service, "rev-parse", "--show-toplevel").stdout.strip())
    status = _git(service, "status", "--porcelain", "--untracked-files=all", "--", ".").stdout
    # porcelain paths are relative to the repository root; a rename shows as "old -> new"
    return [top / line[3:].split(" -> ")[-1].strip('"') for line in status.splitlines() if line]


def find_conflicts(service: Path) -> list[str]:
    """Paths (relative to the service) with unmerged entries, conflict markers or rejected hunks."""
    conflicts = set(
        _git(service, "diff", "--name-only", "--diff-filter=U", "--relative", "--", ".").stdout.split()
    )
    for path in _changed_paths(service):
        if path.suffix == ".rej" or (
            path.is_file()
            and path.stat().st_size < 2_000_000
            and _MARKER.search(path.read_text(errors="replace"))
        ):
            conflicts.add(os.path.relpath(path, service))
    return sorted(conflicts)


def _roll_back(service: Path) -> None:
    _git(service, "checkout", "--", ".")
    _git(service, "clean", "-fdq", "--", ".")


def refresh_lock(service: Path) -> str | None:
    """Refresh requirements.lock with the service's own (just updated) locking module; the problem, or None.

    The module needs only the standard library and uv (a dependency of this tool), not the service's
    packages. Services rendered before locks existed have no such module: nothing to do.
    """
    module = service / "app" / "nexus" / "locking.py"
    if not module.is_file():
        return None
    try:
        runpy.run_path(str(module))["write_lock"](service)
    except subprocess.CalledProcessError as error:
        return f"requirements.lock cannot be refreshed (uv exited {error.returncode}: see its message above)"
    return None


def _run_tests(service: Path) -> str:
    venv_python = service / ".venv" / "bin" / "python"
    python = str(venv_python) if venv_python.exists() else sys.executable
    result = subprocess.run(
        [python, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=service,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        print(
            f"tests of {service.name} failed:\n{result.stdout[-3000:]}{result.stderr[-2000:]}",
            file=sys.stderr,
        )
    return "passed" if result.returncode == 0 else "failed"


def update_service(
    service: Path, *, vcs_ref: str | None = None, data: dict[str, str] | None = None, run_tests: bool = False
) -> UpdateResult:
    service = service.resolve()
    result = UpdateResult(service)
    if not (service / ANSWERS_FILE).is_file():
        result.status, result.detail = "skipped", f"no {ANSWERS_FILE}"
        return result
    result.before = result.after = template_version(service)
    if _git(service, "rev-parse", "--is-inside-work-tree").returncode != 0:
        result.status, result.detail = "skipped", "not in a git repository"
        return result
    if _changed_paths(service):
        result.status, result.detail = (
            "skipped",
            "uncommitted changes in the service folder: commit or stash them",
        )
        return result
    command = [
        sys.executable,
        "-m",
        "copier",
        "update",
        "--trust",
        "--defaults",
        "--quiet",
        "--conflict",
        "inline",
    ]
    if vcs_ref:
        command += ["--vcs-ref", vcs_ref]
    for name, value in (data or {}).items():
        command += ["--data", f"{name}={value}"]
    copier = subprocess.run(command, cwd=service, capture_output=True, text=True, check=False)
    if copier.returncode != 0:
        _roll_back(service)
        message = (copier.stderr.strip().splitlines() or ["copier failed"])[-1]
        result.status, result.detail = "failed", f"copier update failed, service left unchanged: {message}"
        return result
    result.after = template_version(service)
    result.changed = [os.path.relpath(path, service) for path in _changed_paths(service)]
    result.conflicts = find_conflicts(service)
    if result.conflicts:
        result.status, result.detail = "conflict", "resolve the markers, run the tests, then commit"
        return result
    problem = refresh_lock(service)
    result.changed = [os.path.relpath(path, service) for path in _changed_paths(service)]
    if problem:
        result.status, result.detail = "failed", problem
    elif run_tests:
        result.tests = _run_tests(service)
        if result.tests == "failed":
            result.status, result.detail = "failed", "its tests fail after the update (output above)"
    return result


def table(results: list[UpdateResult], root: Path) -> str:
    header = ("service", "version", "files changed", "conflicts", "tests", "status")
    rows = [
        (
            os.path.relpath(result.service, root),
            f"{result.before} → {result.after}",
            str(len(result.changed)),
            ", ".join(result.conflicts) or "-",
            result.tests,
            result.status + (f": {result.detail}" if result.detail and result.status != "ok" else ""),
        )
        for result in results
    ]
    widths = [max(len(row[index]) for row in [header, *rows]) for index in range(len(header))]
    lines = [
        " | ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in [header, *rows]
    ]
    lines.insert(1, "-+-".join("-" * width for width in widths))
    return "\n".join(lines)


def commit_update(result: UpdateResult) -> None:
    """Commit one clean update on its own, so each service's change can be reviewed and reverted alone."""
    _git(result.service, "add", "--all", "--", ".")
    name = result.service.name
    _git(
        result.service,
        "commit",
        "--quiet",
        "-m",
        f"{name}: update nexus-template {result.before} → {result.after}",
        "--",
        ".",
    )


def update_all(
    folder: Path, *, vcs_ref: str | None = None, run_tests: bool = False, commit: bool = False
) -> list[UpdateResult]:
    results = []
    for service in find_services(folder):
        print(f"updating {os.path.relpath(service, folder)} ...", file=sys.stderr, flush=True)
        result = update_service(service, vcs_ref=vcs_ref, run_tests=run_tests)
        if commit and not result.failed and result.changed:
            commit_update(result)
        results.append(result)
    return results
