"""`make format` for the template's own Python files, with the ruff settings of a rendered service.

The plain `.py` files under template/ are rendered as they are, so they are linted and formatted in place;
`.jinja` files are checked on the rendered output by the tests.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from devtools.render import ROOT, copy_working_tree, load_answers, render


def main() -> int:
    files = [str(path) for path in sorted((ROOT / "template").rglob("*.py"))]
    with tempfile.TemporaryDirectory() as scratch:
        workdir = Path(scratch)
        service = render(copy_working_tree(workdir / "template"), workdir / "svc", load_answers("default"))
        config = service / "pyproject.toml"  # ruff reads its [tool.ruff] table
        ruff = str(Path(sys.executable).with_name("ruff"))
        fixed = subprocess.call([ruff, "check", "--config", str(config), "--fix", *files])
        formatted = subprocess.call([ruff, "format", "--config", str(config), *files])
    return fixed or formatted


if __name__ == "__main__":
    sys.exit(main())
