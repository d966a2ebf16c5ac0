"""Less copier work per update: template checkouts shared by a run, and the old render kept.

Copier clones the template for each render, and an update renders it three times (the old version, in
place, the new version), so a fleet clones the same few versions dozens of times; under load that was
the largest share of an update's time. Within one run, each (template, version) is cloned once and
every render reads that checkout. This swaps the `clone` function copier's `Template` uses (copier is pinned
to one version in pyproject.toml; tests/test_update_fleet.py runs through it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from tempfile import TemporaryDirectory

from copier import _main, _template
from copier._vcs import clone as _copier_clone

from nexus_template.updating._isolated import snapshot

__all__ = ["captured_old_render", "shared_clones"]


def _set_template_clone(clone: Callable[..., str]) -> None:
    """Swap the `clone` that copier's Template calls (a name copier._template imports from copier._vcs)."""
    _template.clone = clone  # type: ignore[attr-defined]  # copier._template does not re-export clone


@contextmanager
def shared_clones() -> Iterator[None]:
    """Within the block, copier clones each template version once."""
    if vars(_template)["clone"] is not _copier_clone:  # an outer block already shares them
        yield
        return
    with TemporaryDirectory(prefix="nexus-template-clones-") as cache:
        checkouts: dict[tuple[str, str], Path] = {}

        def clone(url: str, ref: str = "HEAD", location: str | None = None) -> str:
            # copier only reads the checkout (and deletes `location`, left empty here, when done)
            del location
            key = (url, ref)
            if key not in checkouts:
                checkout = str(Path(cache) / str(len(checkouts)))
                checkouts[key] = Path(_copier_clone(url, ref, location=checkout))
            return str(checkouts[key])

        _set_template_clone(clone)
        try:
            yield
        finally:
            _set_template_clone(_copier_clone)


@contextmanager
def captured_old_render() -> Iterator[dict[str, bytes]]:
    """Within the block, the files of the old version copier renders during an update are kept in the
    dict yielded (the guard needs that render; capturing it saves rendering it a second time)."""
    captured: dict[str, bytes] = {}
    original = _main.Worker.run_copy
    prefix = f"{_main.__name__}.old_copy."

    def run_copy(self: _main.Worker) -> None:
        original(self)
        if Path(self.dst_path).name.startswith(prefix):
            captured.update(snapshot(Path(self.dst_path)).files)

    _main.Worker.run_copy = run_copy  # type: ignore[method-assign]  # wrapped for the block, then put back
    try:
        yield captured
    finally:
        _main.Worker.run_copy = original  # type: ignore[method-assign]  # the method copier defines
