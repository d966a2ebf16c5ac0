"""The report of an update run: a table for people, JSON for pull requests and dashboards."""

from __future__ import annotations

import json
import os
from pathlib import Path

from nexus_template.updating._result import UpdateResult

__all__ = ["report_json", "table"]

_HEADER = ("service", "version", "files", "conflicts", "tests", "status")


def _cell(text: str) -> str:
    """One line, and no column separator inside a cell (copier's messages can hold '|')."""
    return " ".join(text.split()).replace("|", "¦")


def _status(result: UpdateResult) -> str:
    if result.status == "ok":
        return ("planned" if result.planned and result.files else "ok") + (
            f": {result.detail}" if result.detail else ""
        )
    return f"{result.status}: {result.detail}"


def table(results: list[UpdateResult], root: Path) -> str:
    """One row per service, then one line per thing a person must read (kept edits, notes)."""
    rows = [
        tuple(
            _cell(cell)
            for cell in (
                os.path.relpath(result.service, root),
                f"{result.before} → {result.after}",
                str(len(result.files)),
                ", ".join(result.conflicts) or "-",
                result.tests,
                _status(result) + (" (committed)" if result.committed else ""),
            )
        )
        for result in results
    ]
    widths = [max(len(row[index]) for row in [_HEADER, *rows]) for index in range(len(_HEADER))]
    lines = [
        " | ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [_HEADER, *rows]
    ]
    lines.insert(1, "-+-".join("-" * width for width in widths))
    details = [
        f"{os.path.relpath(result.service, root)}: {message}"
        for result in results
        for message in [*result.kept, *result.dependency_clashes, *result.notes]
    ]
    return "\n".join(lines + (["", *details] if details else []))


def report_json(results: list[UpdateResult], root: Path) -> str:
    return json.dumps(
        {
            "services": [result.to_json(root) for result in results],
            "needs_attention": sum(result.failed for result in results),
        },
        indent=2,
        ensure_ascii=False,
    )
