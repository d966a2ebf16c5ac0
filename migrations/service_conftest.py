"""Every update, after it (idempotent): tests/conftest.py becomes the service's own.

Up to v0.2.0 tests/conftest.py was template-owned (its first line said so) and held the platform's
fixtures; they now come from a plugin that pyproject.toml loads (nexus_platform.testing since v0.4.0), and
tests/conftest.py is the service's (`_skip_if_exists`), so an update no longer replaces it. A conftest
that still says it is managed by the template is replaced by the template's seed; the fixtures it
held come from the plugin. Runs in the service folder:
    python migrations/service_conftest.py TEMPLATE_ROOT
"""

from __future__ import annotations

import sys
from pathlib import Path

CONFTEST = Path("tests/conftest.py")
SEED = Path("template/tests/conftest.py")
MANAGED = "# Managed by nexus-template"

if __name__ == "__main__":
    template_root = Path(sys.argv[1])
    if CONFTEST.is_file() and CONFTEST.read_text().startswith(MANAGED):
        CONFTEST.write_text((template_root / SEED).read_text())
        print(
            f"migration: {CONFTEST} is now yours (the platform's fixtures come from the nexus_platform.testing "
            "plugin; the template's old version is in git history)",
            file=sys.stderr,
        )
