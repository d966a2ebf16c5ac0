"""Less copier work per update: template checkouts shared by a run, and the old render kept.

Copier clones the template for each render, and an update renders it three times (the old version, in
place, the new version), so a fleet clones the same few versions dozens of times; under load that was
the largest share of an update's time. Within one run, each (template, version) is cloned once and
every render reads that checkout. This swaps the `clone` function copier's `Template` uses (copier is pinned
to one version in pyproject.toml; tests/test_update_fleet.py runs through it).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from tempfile import TemporaryDirectory

from copier import _main, _template

from nexus_template.updating._isolated import snapshot

__all__ = ["captured_old_render", "shared_clones"]


@contextmanager
def shared_clones() -> Iterator[None]:
    """Within the block, copier clones each template version once."""
    original = _template.clone
    if getattr(original, "_shared", False):  # an outer block already shares them
        yield
        return
    with TemporaryDirectory(prefix="nexus-template-clones-") as cache:
        checkouts: dict[tuple[str, str], Path] = {}

        def clone(url: str, ref: str = "HEAD", location: str | None = None) -> str:
            # copier only reads the checkout (and deletes `location`, left empty here, when done)
            del location
            key = (url, ref)
            if key not in checkouts:
                checkouts[key] = Path(original(url, ref, location=str(Path(cache) / str(len(checkouts)))))
            return str(checkouts[key])

        clone._shared = True  # type: ignore[attr-defined]
        _template.clone = clone
        try:
            yield
        finally:
            _template.clone = original


@contextmanager
def captured_old_render() -> Iterator[dict[str, bytes]]:
    """Within the block, the files of the old version copier renders during an update are kept in the
    dict yielded (the guard needs that render; capturing it saves rendering it a second time)."""
    captured: dict[str, bytes] = {}
    original = _main.Worker.run_copy
    prefix = f"{_main.__name__}.old_copy."

    def run_copy(worker: _main.Worker) -> None:
        original(worker)
        if Path(worker.dst_path).name.startswith(prefix):
            captured.update(snapshot(Path(worker.dst_path)).files)

    _main.Worker.run_copy = run_copy  # type: ignore[method-assign]
    try:
        yield captured
    finally:
        _main.Worker.run_copy = original  # type: ignore[method-assign]
