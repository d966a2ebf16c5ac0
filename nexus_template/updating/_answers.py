"""Answer changes an update makes, and derived answers that an explicit value keeps from following."""

from __future__ import annotations

from typing import Any

import yaml

__all__ = ["ANSWERS_FILE", "AUTO", "answer_changes", "explicit_derived_notes", "read_answers"]

ANSWERS_FILE = ".copier-answers.yml"
# A derived answer recorded as "auto" follows its sources (extensions/context.py resolves it).
AUTO = "auto"
# derived answer -> the answers it is derived from
DERIVED = {
    "base_image": ("gpu", "python_version"),
    "cpu_limit": ("gpu",),
    "memory_limit": ("gpu",),
}


def read_answers(content: bytes | str | None) -> dict[str, Any]:
    data = yaml.safe_load(content or "") or {}
    return data if isinstance(data, dict) else {}


def answer_changes(before: dict[str, Any], after: dict[str, Any]) -> dict[str, list[Any]]:
    """name -> [before, after] for each answer the update changed (the template version excluded)."""
    names = (before.keys() | after.keys()) - {"_commit", "_src_path"}
    return {
        name: [before.get(name), after.get(name)]
        for name in sorted(names)
        if before.get(name) != after.get(name)
    }


def explicit_derived_notes(changes: dict[str, list[Any]], after: dict[str, Any]) -> list[str]:
    """A sentence for each derived answer set explicitly while one of its sources changed."""
    notes = []
    for derived, sources in DERIVED.items():
        moved = [source for source in sources if source in changes]
        if not moved or derived not in after or after[derived] == AUTO or derived in changes:
            continue
        what = ", ".join(f"{source} {changes[source][0]} → {changes[source][1]}" for source in moved)
        notes.append(
            f"{derived} is set explicitly to {after[derived]!r} and was kept although {what}: check it "
            f"still fits, or follow the default with --data {derived}={AUTO}"
        )
    return notes
