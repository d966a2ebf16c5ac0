"""The service's `requirements.lock` follows its updated requirements.

The service's own locking module (`app/nexus/locking.py`, template-owned, so already the new version)
refreshes it with uv, a dependency of this tool; services rendered before locks existed have none.
"""

from __future__ import annotations

import runpy
import subprocess
from pathlib import Path

__all__ = ["refresh_lock"]


def refresh_lock(service: Path) -> str | None:
    """Refresh requirements.lock; the problem, or None."""
    module = service / "app" / "nexus" / "locking.py"
    if not module.is_file():
        return None
    try:
        runpy.run_path(str(module))["write_lock"](service)
    except subprocess.CalledProcessError as error:
        return f"requirements.lock cannot be refreshed (uv exited {error.returncode}: see its message above)"
    return None
