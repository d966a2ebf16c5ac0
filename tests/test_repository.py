"""Rules of this repository's own code: what the installable package holds and imports, how a type
checker's complaint may be silenced, and that the fixtures' edits of files fail when they would do nothing."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

import pytest

from devtools.render import ROOT, working_tree_files
from tests.edits import edit_file, edit_file_lines, replaced

PACKAGE = "nexus_template"
# a checker's suppression comment ("type" or "pyright", then ": ignore"), and the only accepted form of
# it: the error codes in brackets, then a comment saying why
_SUPPRESSION = re.compile(r"#\s*(?:type|pyright):\s*ignore\b")
_EXPLAINED = re.compile(r"#\s*(?:type|pyright):\s*ignore\[[\w-]+(?:\s*,\s*[\w-]+)*\]\s*#\s*\S.*[A-Za-z]{3}")
_CODE_SUFFIXES = (".py", ".py.jinja", ".pyi")


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _declared_import_names() -> set[str]:
    """The top-level modules of the distributions pyproject.toml's `dependencies` names."""
    declared = {
        re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0].lower().replace("_", "-")
        for requirement in _pyproject()["project"]["dependencies"]
    }
    return {
        module
        for module, distributions in importlib.metadata.packages_distributions().items()
        if {name.lower().replace("_", "-") for name in distributions} & declared
    }


def _imported_top_levels(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def test_the_package_imports_only_the_standard_library_and_its_declared_dependencies() -> None:
    allowed = set(sys.stdlib_module_names) | _declared_import_names() | {PACKAGE}
    strays = {
        str(path.relative_to(ROOT)): sorted(_imported_top_levels(path) - allowed)
        for path in sorted((ROOT / PACKAGE).rglob("*.py"))
    }
    assert {path: names for path, names in strays.items() if names} == {}, (
        "the installable package imports a development helper or an undeclared distribution"
    )


def test_the_wheel_is_configured_to_hold_every_package_of_the_product_and_nothing_else() -> None:
    packages = {
        ".".join(init.parent.relative_to(ROOT).parts) for init in (ROOT / PACKAGE).rglob("__init__.py")
    }
    assert set(_pyproject()["tool"]["setuptools"]["packages"]) == packages
    assert (ROOT / "devtools" / "__init__.py").is_file()  # the development helpers, outside the wheel


def test_every_type_checker_suppression_names_its_error_codes_and_says_why() -> None:
    """Here and in template/: `# type: ignore[code]  # why`, so a reader (and warn_unused_ignores)
    knows what is silenced; a bare suppression hides every error of its line, today's and tomorrow's."""
    unexplained = [
        f"{relative}:{number}: {line.strip()}"
        for relative in working_tree_files()
        if relative.endswith(_CODE_SUFFIXES) and not relative.startswith("tests/snapshots/")
        for number, line in enumerate((ROOT / relative).read_text().splitlines(), start=1)
        if _SUPPRESSION.search(line) and not _EXPLAINED.search(line)
    ]
    assert unexplained == [], "\n".join(unexplained)


def test_the_suppression_rule_accepts_exactly_the_explained_form() -> None:
    ignore = "# type" + ": ignore"  # split so that this file does not hold the comments it checks
    explained = f"x = f()  {ignore}[attr-defined]  # copier does not re-export clone"
    for line, accepted in [
        (explained, True),
        (f"x = f()  {ignore}[union-attr, arg-type]  # the guard above rules None out", True),
        (f"x = f()  {ignore}", False),
        (f"x = f()  {ignore}[attr-defined]", False),
        (f"x = f()  {ignore}  # because", False),
        (f"x = f()  {ignore}[attr-defined]  #", False),
    ]:
        assert _SUPPRESSION.search(line), line
        assert bool(_EXPLAINED.search(line)) == accepted, line


def test_a_fixture_edit_fails_when_its_text_is_not_there_exactly_as_often_as_expected(tmp_path: Path) -> None:
    module = tmp_path / "service.py"
    module.write_text("import time\n\nroute_handlers=[echo],\n")
    edit_file(module, ("route_handlers=[echo],", "route_handlers=[echo, hello],"))
    assert module.read_text() == "import time\n\nroute_handlers=[echo, hello],\n"
    with pytest.raises(AssertionError, match=r"expected 1 occurrence\(s\) of 'route_handlers=\[echo\],'"):
        edit_file(module, ("route_handlers=[echo],", "route_handlers=[echo, hello],"))  # the no-op it was
    with pytest.raises(AssertionError, match="found 2"):
        replaced("a a", "a", "b")
    assert replaced("a a", "a", "b", count=2) == "b b"
    with pytest.raises(AssertionError, match=r"expected 1 line\(s\) matching"):
        edit_file_lines(module, r"^SERVICE_VERSION=.*$", "SERVICE_VERSION=1")
    assert (
        module.read_text() == "import time\n\nroute_handlers=[echo, hello],\n"
    )  # a failed edit writes nothing
