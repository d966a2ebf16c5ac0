"""Update one service: in an isolated copy, repaired where copier would lose work, checked, then applied."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from packaging.version import InvalidVersion, Version

from nexus_template.updating._answers import (
    ANSWERS_FILE,
    answer_changes,
    explicit_derived_notes,
    read_answers,
)
from nexus_template.updating._clones import captured_old_render, shared_clones
from nexus_template.updating._conflicts import marked_or_rejected
from nexus_template.updating._deps import pin_clashes
from nexus_template.updating._git import changed_paths, git, top_level
from nexus_template.updating._guard import (
    OldRender,
    keep_binary_edits,
    keep_removed_edits,
    restore_crlf,
    to_lf,
)
from nexus_template.updating._isolated import (
    Snapshot,
    apply_to,
    commit_copy,
    isolated_copy,
    run_copier,
    snapshot,
    unmerged,
)
from nexus_template.updating._lock import refresh_lock
from nexus_template.updating._resolve import resolution_problem
from nexus_template.updating._result import UpdateResult
from nexus_template.updating._testenv import run_tests as run_service_tests

__all__ = ["latest_release", "update_service"]


def latest_release(src: str) -> str | None:
    """The newest release tag of the template (what copier takes without --vcs-ref), None if unknown.

    Asked for every service, not cached: a release can be tagged while a long process runs."""
    listed = git(Path.cwd(), "ls-remote", "--tags", "--refs", src, check=False)
    versions = []
    for line in listed.stdout.splitlines():
        tag = line.rpartition("refs/tags/")[2]
        try:
            version = Version(tag)
        except InvalidVersion:
            continue
        if not version.is_prerelease:
            versions.append((version, tag))
    return max(versions)[1] if versions else None


def _refuse(result: UpdateResult, service: Path) -> bool:
    """Mark the result skipped when the service cannot be updated as it stands."""
    if not (service / ANSWERS_FILE).is_file():
        result.status, result.detail = "skipped", f"no {ANSWERS_FILE}"
    elif top_level(service) is None:
        result.status, result.detail = "skipped", "not in a git repository"
    elif git(service, "ls-files", "--", ANSWERS_FILE).stdout.strip() == "":
        result.status, result.detail = "skipped", f"{ANSWERS_FILE} is not committed"
    elif dirty := changed_paths(service):
        shown = ", ".join(dirty[:3]) + (", ..." if len(dirty) > 3 else "")
        result.status, result.detail = (
            "skipped",
            f"uncommitted changes in the service folder ({shown}): commit or stash them",
        )
    return result.status == "skipped"


def _describe(result: UpdateResult, before: Snapshot, after: Snapshot) -> None:
    result.added = sorted(after.files.keys() - before.files.keys())
    result.removed = sorted(before.files.keys() - after.files.keys())
    result.changed = sorted(
        path
        for path in before.files.keys() & after.files.keys()
        if before.files[path] != after.files[path] or before.modes[path] != after.modes[path]
    )


def _update_copy(
    copy: Path,
    result: UpdateResult,
    recorded: dict[str, Any],
    *,
    vcs_ref: str | None,
    data: dict[str, str],
    resolve: bool,
) -> tuple[Snapshot, Snapshot, dict[str, Any]] | None:
    """Run and repair the update in the isolated copy; (files before, files after, new answers), or None
    when copier failed (the result says why)."""
    original = snapshot(copy)
    crlf = to_lf(copy)
    commit_copy(copy)
    merge_base = snapshot(copy)
    with captured_old_render() as old_files:
        error = run_copier(copy, vcs_ref=vcs_ref, data=data)
    if error:
        result.status, result.detail = "failed", f"copier update failed, service left unchanged: {error}"
        return None
    updated = snapshot(copy)
    answers = read_answers(updated.files.get(ANSWERS_FILE))
    result.after = str(answers.get("_commit", "?"))
    old = OldRender(recorded, old_files)
    result.kept = keep_removed_edits(copy, merge_base, updated, old, result.after)
    binary_conflicts = keep_binary_edits(copy, merge_base, updated, old)
    restore_crlf(copy, crlf)
    updated = snapshot(copy)
    _describe(result, original, updated)
    touched = {path: updated.files[path] for path in result.files if path in updated.files}
    result.conflicts = sorted({*unmerged(copy), *binary_conflicts, *marked_or_rejected(touched)})
    result.answers = answer_changes(recorded, answers)
    result.notes = explicit_derived_notes(result.answers, answers) + _capability_examples(result.added)
    result.dependency_clashes = pin_clashes(copy)
    if resolve and not result.dependency_clashes and (problem := resolution_problem(copy)):
        (
            result.notes if problem.startswith("requirements not checked") else result.dependency_clashes
        ).append(problem)
    if not (result.conflicts or result.dependency_clashes):
        if problem := refresh_lock(copy):
            result.dependency_clashes.append(problem)
        updated = snapshot(copy)
        _describe(result, original, updated)
    return original, updated, answers


def _capability_examples(added: list[str]) -> list[str]:
    """The capability modules the update created (migrations/capability_modules.py): examples to replace."""
    return [
        f"{path}: the template's example, created because release/service.env offers its capability and "
        "the service had no module for it: replace it with your implementation (or take the capability out)"
        for path in added
        if path.startswith("app/capabilities/") and path.endswith(".py") and not path.endswith("/__init__.py")
    ]


def update_service(service: Path, **options: Any) -> UpdateResult:
    """Update (or with `plan=True`, predict the update of) one service. Never raises: a surprise (a git
    command failing, say) is the service's `failed` result, so one service cannot stop a fleet.

    Options: vcs_ref, data, run_tests, pytest_args, plan, resolve (see `_update_service`)."""
    try:
        return _update_service(service.resolve(), **options)
    except Exception as error:  # noqa: BLE001 -- reported as this service's failure
        lines = str(error).strip().splitlines() or [type(error).__name__]
        return UpdateResult(
            service.resolve(),
            status="failed",
            detail=f"{type(error).__name__}: {lines[-1]}",
            planned=bool(options.get("plan")),
        )


def _update_service(
    service: Path,
    *,
    vcs_ref: str | None = None,
    data: dict[str, str] | None = None,
    run_tests: bool = False,
    pytest_args: list[str] | None = None,
    plan: bool = False,
    resolve: bool = True,
) -> UpdateResult:
    """`resolve`: also ask pip's resolver whether the updated requirements resolve (cached; needs an index)."""
    result = UpdateResult(service, planned=plan)
    if _refuse(result, service):
        return result
    recorded = read_answers((service / ANSWERS_FILE).read_bytes())
    result.before = result.after = str(recorded.get("_commit", "?"))
    target = vcs_ref or latest_release(str(recorded.get("_src_path", "")))
    if target == result.before and not data:
        result.detail = "up to date"
        return result
    with shared_clones(), isolated_copy(service) as copy:
        updated = _update_copy(
            copy, result, recorded, vcs_ref=vcs_ref, data=dict(data or {}), resolve=resolve
        )
        if updated is None:
            return result
        original, files, answers = updated
        if not plan:
            apply_to(service, original, files)
    if run_tests and not plan and not (result.conflicts or result.dependency_clashes):
        result.tests, result.tests_problem = run_service_tests(
            service, str(answers.get("python_version") or "") or None, list(pytest_args or [])
        )
    result.settle()
    return result
