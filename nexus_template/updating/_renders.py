"""Less work in each of copier's three renders per update, with copier's results unchanged.

Two costs of copier 9.19 (pinned in pyproject.toml) repeat per file where once per render gives the same
answer; a profile of `bench/update_fleet.py` put them at about a third of an update's time:

- Jinja compiles every templated path part and the answers file's path from source, again for each file
  (about 650 compiles per render of about 90 files). Within one Jinja environment (copier makes one per
  render) the same source compiles to the same code, so each source is compiled once per environment.
- For every file written, copier asks git for `core.fileMode` (to mirror executable bits into the index
  where git ignores them on disk), one git process per file. The answer is the same for every file of
  one render, so it is asked once per destination; copier's own method still runs wherever it is
  "false", the only case in which it does anything.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import CodeType
from typing import Any
from weakref import WeakKeyDictionary

from copier import _main
from jinja2 import Environment

__all__ = ["lighter_renders"]


@contextmanager
def lighter_renders() -> Iterator[None]:
    """Within the block, copier's renders compile each Jinja source once and ask git for core.fileMode
    once per destination (module docstring)."""
    compile_source = Environment.compile
    sync_mode = _main.Worker._sync_git_index_executable_bit
    compiled: WeakKeyDictionary[Environment, dict[str, CodeType]] = WeakKeyDictionary()
    file_mode_false: dict[Path, bool] = {}

    def compile_once(self: Environment, source: Any, *args: Any, **kwargs: Any) -> Any:
        # only `from_string`'s call (the source alone) is cached; the loader's passes names
        if args or kwargs or not isinstance(source, str):
            return compile_source(self, source, *args, **kwargs)
        # extensions reset per-compile state here (copier's yield tag): done as if compiling again
        self.preprocess(source)
        codes = compiled.setdefault(self, {})
        if source not in codes:
            codes[source] = compile_source(self, source)
        return codes[source]

    def sync_mode_where_needed(self: _main.Worker, dst_relpath: Path, src_mode: int) -> None:
        root = Path(self.subproject.local_abspath)
        if root not in file_mode_false:
            asked = subprocess.run(
                ["git", "config", "--type=bool", "--get", "core.fileMode"],
                cwd=root,
                capture_output=True,
                text=True,
                check=False,
            )
            file_mode_false[root] = asked.returncode == 0 and asked.stdout.strip() == "false"
        if file_mode_false[root]:
            sync_mode(self, dst_relpath, src_mode)

    Environment.compile = compile_once  # type: ignore[method-assign]  # wrapped for the block, put back below
    _main.Worker._sync_git_index_executable_bit = sync_mode_where_needed  # type: ignore[method-assign]  # same
    try:
        yield
    finally:
        Environment.compile = compile_source  # type: ignore[method-assign]  # the method Jinja defines
        _main.Worker._sync_git_index_executable_bit = sync_mode  # type: ignore[method-assign]  # copier's own
