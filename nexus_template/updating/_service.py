"""Update one service: in an isolated copy, repaired where copier would lose work, checked, then applied."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nexus_template.updating._abort import recorded_update
from nexus_template.updating._answers import (
    ANSWERS_FILE,
    Answers,
    answer_changes,
    captured_migrated_answers,
    explicit_derived_notes,
    read_answers,
    template_written_answers,
)
from nexus_template.updating._clones import captured_renders, shared_clones
from nexus_template.updating._conflicts import marked_or_rejected
from nexus_template.updating._git import changed_paths, git, top_level
from nexus_template.updating._guard import (
    OldRender,
    keep_binary_edits,
    keep_deleted_seeds,
    keep_removed_edits,
    restore_crlf,
    to_lf,
)
from nexus_template.updating._isolated import (
    Snapshot,
    apply_to,
    commit_copy,
    isolated_copy,
    keep_service_files,
    run_copier,
    snapshot,
    unmerged,
)
from nexus_template.updating._renders import lighter_renders
from nexus_template.updating._resolve import check_requirements
from nexus_template.updating._result import UpdateResult
from nexus_template.updating._sources import ahead_of, has_tag, has_version, latest_release
from nexus_template.updating._testenv import run_tests as run_service_tests

__all__ = ["update_service"]


def _refuse(result: UpdateResult, service: Path) -> bool:
    """Mark the result skipped when the service cannot be updated as it stands."""
    if not (service / ANSWERS_FILE).is_file():
        result.status, result.detail = "skipped", f"no {ANSWERS_FILE}"
    elif top_level(service) is None:
        result.status, result.detail = "skipped", "not in a git repository"
    elif git(service, "ls-files", "--", ANSWERS_FILE).stdout.strip() == "":
        result.status, result.detail = "skipped", f"{ANSWERS_FILE} is not committed"
    elif dirty := changed_paths(service):
        result.status, result.detail = (
            "skipped",
            f"uncommitted changes in the service folder ({_shown(dirty)}): commit or stash them",
        )
    elif hidden := _hidden_from_status(service):
        result.status, result.detail = (
            "skipped",
            f"files whose changes git hides (skip-worktree or assume-unchanged: {_shown(hidden)}): clear "
            "the flags with `git update-index --no-skip-worktree --no-assume-unchanged FILE`, commit, update",
        )
    return result.status == "skipped"


def _shown(paths: list[str]) -> str:
    return ", ".join(paths[:3]) + (", ..." if len(paths) > 3 else "")


def _hidden_from_status(service: Path) -> list[str]:
    """Files marked skip-worktree or assume-unchanged: `git status` does not show their local changes, so
    the clean check cannot vouch for them, and an update would write over them (and `--commit` leave the
    release's change to them out)."""
    listed = git(service, "ls-files", "-v", "-z", "--", ".").stdout
    # `git ls-files -v`: "S" marks skip-worktree, a lower-case tag assume-unchanged
    return [entry[2:] for entry in listed.split("\0") if entry and (entry[0] == "S" or entry[0].islower())]


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
    asked: Answers,
    *,
    service: Path,
    vcs_ref: str | None,
    resolve: bool,
    offline: bool,
) -> tuple[Snapshot, Snapshot, dict[str, Any]] | None:
    """Run and repair the update in the isolated copy; (files before, files after, new answers), or None
    when copier failed (the result says why)."""
    original = snapshot(copy)
    crlf = to_lf(copy)
    asked.put_in(copy)  # after `original`: the service's own answers file is what apply_to compares with
    commit_copy(copy)
    merge_base = snapshot(copy)
    with captured_renders() as renders, captured_migrated_answers(copy) as migrated:
        error = run_copier(copy, vcs_ref=vcs_ref, data=asked.asked)
    if error:
        result.status, result.detail = "failed", f"copier update failed, service left unchanged: {error}"
        return None
    updated = snapshot(copy)
    answers = read_answers(updated.files.get(ANSWERS_FILE))
    result.after = str(answers.get("_commit", "?"))
    old = OldRender(asked.for_the_copy(), renders.old)
    keep_deleted_seeds(copy, merge_base, updated, old)  # first: a seed copier re-created is no rename target
    result.kept = keep_removed_edits(copy, merge_base, updated, old, result.after, released=renders.new)
    binary_conflicts = keep_binary_edits(copy, merge_base, updated, old)
    restore_crlf(copy, crlf)
    kept_local = keep_service_files(service, copy, original, old.files, lambda: OldRender(answers).files)
    updated = snapshot(copy)
    _describe(result, original, updated)
    touched = {path: updated.files[path] for path in result.files if path in updated.files}
    result.conflicts = sorted({*unmerged(copy), *binary_conflicts, *marked_or_rejected(touched)})
    result.answers = answer_changes(asked.for_the_copy(), answers)
    result.notes = (
        explicit_derived_notes(result.answers, answers)
        + _capability_examples(result.added)
        + asked.unasked_notes(migrated, answers)
        + kept_local
    )
    check_requirements(copy, result, resolve=resolve, offline=offline, locking_module=renders.locking_module)
    updated = snapshot(copy)  # the lock may have been refreshed
    _describe(result, original, updated)
    return original, updated, answers


@dataclass
class _Version:
    """The template version to update to: `vcs_ref` for copier (None: its newest tag), `target` its name."""

    vcs_ref: str | None
    target: str | None


def _what_to_update(
    service: Path,
    result: UpdateResult,
    recorded: dict[str, Any],
    *,
    base: str | None,
    vcs_ref: str | None,
    data: dict[str, str] | None,
) -> tuple[Answers | None, _Version]:
    """The answers asked for and the version to take; no answers when there is nothing to do (up to
    date, ahead of the newest release) or `--base` is refused (the result says which)."""
    if base:
        if problem := _base_problem(str(recorded.get("_src_path", "")), result.before, base):
            result.status, result.detail = "failed", problem
            return None, _Version(vcs_ref, None)
        recorded["_commit"] = base
    asked = Answers(recorded, template_written_answers(service, recorded), dict(data or {}))
    target = vcs_ref or latest_release(str(recorded.get("_src_path", "")))
    if target == result.before and not asked.asked and not base:
        result.detail = "up to date"
        return None, _Version(vcs_ref, target)
    if not vcs_ref and target and ahead_of(str(recorded.get("_commit", "?")), target):
        # made from a commit after the newest release: copier would refuse to "downgrade" it to that release
        if not asked.asked:
            result.detail = (
                f"ahead of the newest release {target} (made from {result.before}): "
                "it updates with the next release"
            )
            return None, _Version(vcs_ref, target)
        vcs_ref = str(recorded["_commit"])  # new answers (--data or hand edits), same template version
    return asked, _Version(vcs_ref, vcs_ref or target)


def _base_problem(src: str, recorded: str, base: str) -> str | None:
    """Why `--base` must not be used here: it names a release of the template and stands in for a recorded
    version the template lost; in place of one it still has, it would pass the releases in between off as
    the service's own edits."""
    if not has_tag(src, base):
        return f"--base {base}: the template has no such release tag"
    if has_version(src, recorded):
        return f"--base: the template still has {recorded}, the version the service records: update without --base"
    return None


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

    Options: vcs_ref, data, base, run_tests, pytest_args, plan, resolve, offline (see `_update_service`)."""
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
    base: str | None = None,
    run_tests: bool = False,
    pytest_args: list[str] | None = None,
    plan: bool = False,
    resolve: bool = True,
    offline: bool = False,
) -> UpdateResult:
    """`resolve`: also ask pip's resolver whether the updated requirements resolve (cached; needs an index).
    `offline`: ask no package index (no resolution; requirements.lock only from the cache, else reported).
    `base`: the template version to take the service as made from, instead of the recorded one (which may
    be gone from the template: a rewritten history, a throwaway commit); the merge then shows where the
    service differs from that version, and nothing is overwritten."""
    result = UpdateResult(service, planned=plan)
    if _refuse(result, service):
        return result
    recorded = read_answers((service / ANSWERS_FILE).read_bytes())
    result.before = result.after = str(recorded.get("_commit", "?"))
    asked, version = _what_to_update(service, result, recorded, base=base, vcs_ref=vcs_ref, data=data)
    if asked is None:  # nothing to do, or refused: the result says which
        return result
    with shared_clones(), lighter_renders(), isolated_copy(service) as copy:
        if problem := asked.problem(version.target):
            result.status, result.detail = "failed", problem
            return result
        updated = _update_copy(
            copy, result, asked, service=service, vcs_ref=version.vcs_ref, resolve=resolve, offline=offline
        )
        if updated is None:
            return result
        original, files, answers = updated
        if not plan and result.files:
            # what `update --abort` undoes
            with recorded_update(service, result.files, before=result.before, after=result.after):
                apply_to(service, original, files)
    if run_tests and not plan and not (result.conflicts or result.dependency_clashes):
        result.tests, result.tests_problem = run_service_tests(
            service,
            str(answers.get("python_version") or "") or None,
            list(pytest_args or []),
            offline=offline,
        )
    result.settle()
    return result
