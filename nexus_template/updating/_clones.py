"""Less copier work per update: template checkouts shared by a run, and what each update renders kept.

Copier clones the template for each render, and an update renders it three times (the old version, in
place, the new version), so a fleet clones the same few versions dozens of times; under load that was
the largest share of an update's time. Within one run, each (template, version) is cloned once and
every render reads that checkout. This swaps the `clone` function copier's `Template` uses (copier is pinned
to one version in pyproject.toml; tests/test_update_fleet.py runs through it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from tempfile import TemporaryDirectory

from copier import _main, _template
from copier._vcs import clone as _copier_clone

from nexus_template.updating._isolated import snapshot
from nexus_template.updating._lock import LIBRARY_LOCKING_MODULE

__all__ = ["Renders", "captured_renders", "shared_clones"]


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


@dataclass
class Renders:
    """What copier rendered during an update, kept so that nothing has to be rendered again."""

    old: dict[str, bytes] = field(default_factory=dict)  # the recorded version's files
    new: set[str] = field(default_factory=set)  # the paths the new version renders
    # the nexus-ai-platform locking module of the new version's checkout, for releases that have the library
    locking_module: str | None = None


@contextmanager
def captured_renders() -> Iterator[Renders]:
    """Within the block, what copier renders during an update is kept in the Renders yielded: the guard
    needs the old render and the new one's paths, the lock refresh the release's locking module."""
    captured = Renders()
    original = _main.Worker.run_copy
    old_prefix, new_prefix = f"{_main.__name__}.old_copy.", f"{_main.__name__}.new_copy."

    def run_copy(self: _main.Worker) -> None:
        original(self)
        rendered = Path(self.dst_path)
        # the service is rendered at its path inside copier's temporary folder (services/<name>/...)
        folder = next((part for part in rendered.parts if part.startswith((old_prefix, new_prefix))), "")
        if folder.startswith(old_prefix):
            captured.old.update(snapshot(rendered).files)
        elif folder.startswith(new_prefix):
            captured.new.update(snapshot(rendered).files)
            module = Path(self.template.local_abspath) / LIBRARY_LOCKING_MODULE
            captured.locking_module = module.read_text() if module.is_file() else None

    _main.Worker.run_copy = run_copy  # type: ignore[method-assign]  # wrapped for the block, then put back
    try:
        yield captured
    finally:
        _main.Worker.run_copy = original  # type: ignore[method-assign]  # the method copier defines
