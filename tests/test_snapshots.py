"""The rendered trees of the canonical answer sets equal the checked-in snapshots."""

from __future__ import annotations

import difflib
from pathlib import Path

import pytest

from tests.snapshots import CANONICAL, SNAPSHOTS, render_canonical, tree


@pytest.mark.parametrize("name", CANONICAL)
def test_render_matches_snapshot(template_repo: Path, tmp_path: Path, name: str) -> None:
    actual = tree(render_canonical(template_repo, tmp_path, name))
    expected = tree(SNAPSHOTS / name)
    problems = []
    for path in sorted(set(actual) | set(expected)):
        if path not in expected:
            problems.append(f"new file {path}")
        elif path not in actual:
            problems.append(f"file gone {path}")
        elif actual[path] != expected[path]:
            diff = difflib.unified_diff(
                expected[path].splitlines(),
                actual[path].splitlines(),
                f"snapshot/{path}",
                f"rendered/{path}",
                lineterm="",
            )
            problems.append("\n".join(diff))
    assert not problems, (
        "render differs from tests/snapshots (run `make snapshots` if intended):\n" + "\n".join(problems)
    )
