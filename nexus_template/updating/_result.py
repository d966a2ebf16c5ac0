"""What one service's update did (or, with --plan, would do)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["UpdateResult"]

# Worst first: the status of a service is the worst thing that happened to it.
STATUSES = ("failed", "conflict", "review", "skipped", "ok")


@dataclass
class UpdateResult:
    service: Path
    before: str = "?"
    after: str = "?"
    changed: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    # edits the release would have dropped, and what was done instead ("path: removed by v2 ... kept")
    kept: list[str] = field(default_factory=list)
    answers: dict[str, list[Any]] = field(default_factory=dict)  # name -> [before, after]
    dependency_clashes: list[str] = field(default_factory=list)
    # answers kept that may no longer fit (a typed base_image while python_version changed); checks
    # that could not be made
    notes: list[str] = field(default_factory=list)
    tests: str = "not run"
    tests_problem: str = ""
    status: str = "ok"
    detail: str = ""
    planned: bool = False
    committed: bool = False

    @property
    def failed(self) -> bool:
        return self.status != "ok"

    @property
    def files(self) -> list[str]:
        """Every path the update touches."""
        return sorted({*self.changed, *self.added, *self.removed})

    def settle(self) -> None:
        """Derive status and detail from what was found (call once everything is known)."""
        if self.status in {"failed", "skipped"}:
            return
        if self.dependency_clashes:
            self.status, self.detail = "failed", "requirements clash: " + "; ".join(self.dependency_clashes)
        elif self.tests == "failed":
            self.status, self.detail = "failed", self.tests_problem or "its tests fail after the update"
        elif self.conflicts:
            self.status, self.detail = "conflict", "resolve the markers / .rej files, run the tests, commit"
        elif self.kept or self.notes:
            self.status, self.detail = "review", "; ".join([*self.kept, *self.notes])

    def to_json(self, root: Path) -> dict[str, Any]:
        data = asdict(self)
        data["service"] = (
            str(self.service.relative_to(root)) if self.service.is_relative_to(root) else str(self.service)
        )
        return data
