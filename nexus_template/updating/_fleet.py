"""Every service under a folder, one at a time: each outcome reported, each clean update its own commit."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nexus_template.updating._abort import forget_update
from nexus_template.updating._answers import ANSWERS_FILE, read_answers
from nexus_template.updating._clones import shared_clones
from nexus_template.updating._git import git
from nexus_template.updating._result import UpdateResult
from nexus_template.updating._service import update_service

__all__ = ["commit_update", "find_services", "update_all"]

_NOT_SERVICES = {".git", ".venv", "node_modules"}


def find_services(folder: Path) -> list[Path]:
    """Folders under `folder` holding an answers file of this template (it records `service_name`)."""
    services = []
    for answers in sorted(folder.resolve().rglob(ANSWERS_FILE)):
        if _NOT_SERVICES & set(answers.parts):
            continue
        data = read_answers(answers.read_bytes())
        if "service_name" in data and "_src_path" in data:
            services.append(answers.parent)
    return services


def commit_update(result: UpdateResult) -> None:
    """Commit one clean update on its own (only the service folder), so it can be reviewed and reverted alone.

    A commit git refuses (no identity, signing without a key, a hook, the index locked by another git)
    becomes the service's `failed` result with git's reason; what was staged for it is unstaged, so the
    run leaves nothing staged that it did not commit, and the update stays in the folder (`--abort` undoes it).
    """
    message = f"{result.service.name}: update nexus-template {result.before} → {result.after}"
    try:
        git(result.service, "add", "--all", "--", ".")
        git(result.service, "commit", "--quiet", "--no-verify", "--only", "-m", message, "--", ".")
    except subprocess.CalledProcessError as error:
        git(result.service, "reset", "--quiet", "--", ".", check=False)
        said = (error.stderr or error.stdout or "").splitlines()
        reason = " ".join(line for line in said if line.startswith(("error:", "fatal:"))) or " ".join(said)
        result.status = "failed"
        result.detail = f"updated but not committed, git commit failed: {reason}"
        return
    forget_update(result.service)
    result.committed = True


def update_all(
    folder: Path,
    *,
    commit: bool = False,
    progress: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True),
    **options: Any,
) -> list[UpdateResult]:
    """Update every service under `folder`; `options` are update_service's (vcs_ref, run_tests, plan, ...)."""
    root = folder.resolve()
    results = []
    with shared_clones():
        for service in find_services(folder):
            progress(
                f"{'planning' if options.get('plan') else 'updating'} {os.path.relpath(service, root)} ..."
            )
            result = update_service(service, **options)
            if commit and not result.planned and not result.failed and result.files:
                commit_update(result)
            results.append(result)
    return results
