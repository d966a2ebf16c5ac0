"""`make format` for the template's own Python files, with the ruff settings of a rendered service.

The plain `.py` files under template/ are rendered as they are, so they are linted and formatted in place;
`.jinja` files are checked on the rendered output by the tests.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

from nexus_template.render import ROOT, copy_working_tree, load_answers, render


def ruff_settings(service: Path) -> str:
    """The rendered pyproject's [tool.ruff] table as a standalone ruff.toml."""
    ruff = tomllib.loads((service / "pyproject.toml").read_text())["tool"]["ruff"]
    lint = ruff.pop("lint")
    isort = lint.pop("isort", {})
    lines = [f"{key} = {value!r}".replace("'", '"') for key, value in ruff.items()]
    lines += ["[lint]", *(f"{key} = {value!r}".replace("'", '"') for key, value in lint.items())]
    lines += ["[lint.isort]", *(f"{key} = {value!r}".replace("'", '"') for key, value in isort.items())]
    return "\n".join(lines) + "\n"


def main() -> int:
    files = [str(path) for path in sorted((ROOT / "template").rglob("*.py"))]
    with tempfile.TemporaryDirectory() as scratch:
        workdir = Path(scratch)
        service = render(copy_working_tree(workdir / "template"), workdir / "svc", load_answers("default"))
        config = workdir / "ruff.toml"
        config.write_text(ruff_settings(service))
        ruff = str(Path(sys.executable).with_name("ruff"))
        fixed = subprocess.call([ruff, "check", "--config", str(config), "--fix", *files])
        formatted = subprocess.call([ruff, "format", "--config", str(config), *files])
    return fixed or formatted


if __name__ == "__main__":
    sys.exit(main())
