"""`nexus-template matrix`: the services of a monorepo that a change touches, as a GitHub Actions matrix.

The monorepo's root workflow (monorepo/.github/workflows/services.yml in the template) runs this step to
choose which services it lints, type-checks, tests and builds; tests/test_monorepo.py runs the same step.
A service is a folder under FOLDER with this template's answers file, found as `update-all` finds them.
It changed when a file under its folder differs between the merge base of REF and HEAD and the work tree
(a commit on the branch, or an uncommitted or untracked file when run by hand).

Every service is listed when the change cannot be told: no REF, all zeros (GitHub's `before` of a newly
pushed branch), or a REF this clone does not have (a force push); and when a `--shared` path changed (the
root's workflow, the lock it installs from, the root's answers: what every service's checks run with).

The matrix is one JSON line: a list of {"name", "path", "python", "image"}, `path` from the repository's
root (a job's working directory), `python` the service's python_version answer, `image` the image name
its own ci.yml would build (`nexus/<service_name>`, as extensions/context.py derives it).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from nexus_template.updating import find_services
from nexus_template.updating._answers import ANSWERS_FILE, read_answers
from nexus_template.updating._git import git, top_level

__all__ = ["MATRIX_HELP", "add_matrix_command", "changed_services", "run_matrix_command"]

MATRIX_HELP = "the services under FOLDER a change touches, as a JSON matrix for the monorepo's root workflow"
# the python_version question's default (copier.yml): an answers file records it, this is for safety
_DEFAULT_PYTHON = "3.11"


def add_matrix_command(matrix: argparse.ArgumentParser) -> None:
    matrix.add_argument("folder", type=Path, help="the monorepo's folder of services, e.g. services")
    matrix.add_argument(
        "--changed-since",
        default="",
        metavar="REF",
        help="list the services changed since the merge base of REF and HEAD (empty: every service)",
    )
    matrix.add_argument(
        "--shared",
        action="append",
        default=[],
        metavar="PATH",
        help="a file or folder (from the repository's root) whose change lists every service; repeatable",
    )


def _entry(service: Path, top: Path) -> dict[str, str]:
    answers = read_answers((service / ANSWERS_FILE).read_bytes())
    name = str(answers["service_name"])
    return {
        "name": name,
        "path": service.relative_to(top).as_posix(),
        "python": str(answers.get("python_version", _DEFAULT_PYTHON)),
        "image": f"nexus/{name}",
    }


def _changed_files(top: Path, since: str) -> list[str] | None:
    """Paths (from the repository's root) changed since the merge base of `since` and HEAD; None when
    `since` is no commit here."""
    if (
        not since.strip("0")
        or git(top, "rev-parse", "--verify", "--quiet", f"{since}^{{commit}}", check=False).returncode
    ):
        return None
    # --no-renames: a file moved from one service to another changes both
    changed = git(top, "diff", "--name-only", "--no-renames", "-z", "--merge-base", since).stdout
    untracked = git(top, "ls-files", "--others", "--exclude-standard", "-z").stdout
    return [path for path in (changed + untracked).split("\0") if path]


def _under(path: str, folder: str) -> bool:
    folder = folder.strip("/")
    return path == folder or path.startswith(f"{folder}/")


def changed_services(folder: Path, since: str, shared: list[str]) -> tuple[list[dict[str, str]], str]:
    """The matrix entries of the services under `folder` changed since `since`, and why those."""
    top = top_level(folder)
    if top is None:
        raise ValueError(f"{folder} is not in a git repository")
    services = [_entry(service, top.resolve()) for service in find_services(folder)]
    changed = _changed_files(top, since)
    if changed is None:
        return services, f"every service: {since or 'no base commit'} is not a commit to compare with"
    if touched := sorted({path for path in changed for prefix in shared if _under(path, prefix)}):
        return services, f"every service: shared {', '.join(touched)} changed"
    listed = [entry for entry in services if any(_under(path, entry["path"]) for path in changed)]
    return listed, f"{len(listed)} of {len(services)} service(s) changed since {since}"


def run_matrix_command(args: argparse.Namespace) -> int:
    try:
        entries, reason = changed_services(args.folder, args.changed_since, args.shared)
    except ValueError as error:
        print(f"nexus-template: {error}", file=sys.stderr)
        return 1
    print(reason, file=sys.stderr)
    print(json.dumps(entries, separators=(",", ":")))
    return 0
