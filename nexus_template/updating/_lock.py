"""The service's `requirements.lock` follows its updated requirements.

The service's own locking module (`app/nexus/_locking.py`, template-owned, so already the new version)
refreshes it with uv, a dependency of this tool (`app/nexus/locking.py` in a release before the platform's
modules were private); services rendered before locks existed have none.
"""

from __future__ import annotations

import runpy
import subprocess
from pathlib import Path

__all__ = ["refresh_lock"]


def refresh_lock(service: Path) -> str | None:
    """Refresh requirements.lock; the problem, or None."""
    found = [
        path for name in ("_locking.py", "locking.py") if (path := service / "app" / "nexus" / name).is_file()
    ]
    if not found:
        return None
    module = found[0]
    try:
        runpy.run_path(str(module))["write_lock"](service)
    except subprocess.CalledProcessError as error:
        # uv explains the clash in its last lines ("Because litestar depends on multidict>=6.0.2 ...")
        explanation = " ".join(line.strip() for line in (error.stderr or "").strip().splitlines()[-6:])
        return f"requirements.lock cannot be refreshed, uv cannot resolve the requirements: {explanation}"
    return None
