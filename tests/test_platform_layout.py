"""The nexus-ai-platform library's shape: what it imports, that its modules form no circle, and that
importing it does nothing but define things."""

from __future__ import annotations

import ast
import graphlib
import importlib.metadata
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from devtools.render import ROOT

pytestmark = pytest.mark.check

SOURCE = ROOT / "nexus-ai-platform" / "src"
PACKAGE = SOURCE / "nexus_platform"
# where an extra's distributions may be imported (nowhere else: the library works without them)
EXTRA_PLACES = {"gpu": "_gpu.py", "testing": "testing/"}


def _distribution_modules(requirements: list[str]) -> set[str]:
    names = {
        re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0].lower().replace("_", "-")
        for requirement in requirements
    }
    return {
        module
        for module, distributions in importlib.metadata.packages_distributions().items()
        if {name.lower().replace("_", "-") for name in distributions} & names
    }


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SOURCE).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Absolute module names `path` imports, anywhere in it (a deferred import closes a circle too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def test_the_library_imports_only_the_standard_library_and_its_declared_dependencies() -> None:
    project = tomllib.loads((ROOT / "nexus-ai-platform" / "pyproject.toml").read_text())["project"]
    allowed = (
        set(sys.stdlib_module_names) | _distribution_modules(project["dependencies"]) | {"nexus_platform"}
    )
    extras = {
        extra: _distribution_modules(found) for extra, found in project["optional-dependencies"].items()
    }
    assert set(extras) == set(EXTRA_PLACES)
    strays = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        permitted = allowed | {
            module
            for extra, modules in extras.items()
            if relative.startswith(EXTRA_PLACES[extra])
            for module in modules
        }
        top_levels = {name.split(".")[0] for name in _imports(path)}
        if top_levels - permitted:
            strays[relative] = sorted(top_levels - permitted)
    assert strays == {}, "the library imports an undeclared distribution, or an extra's outside its place"


def test_the_library_modules_import_each_other_without_a_circle() -> None:
    modules = {_module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph = {
        name: {imported for imported in _imports(path) if imported in modules} - {name}
        for name, path in modules.items()
    }
    # a package's __init__ re-exports its modules: an import of `a.b` from `a` is the package's own
    graph = {
        name: {each for each in edges if not name.startswith(f"{each}.")} for name, edges in graph.items()
    }
    seen: dict[str, int] = {}  # 1: on the current path, 2: done
    circles: list[list[str]] = []

    def visit(name: str, path: list[str]) -> None:
        seen[name] = 1
        for each in sorted(graph[name]):
            if seen.get(each) == 1:
                circles.append([*path[path.index(each) :], each] if each in path else [name, each])
            elif each not in seen:
                visit(each, [*path, each])
        seen[name] = 2

    for name in sorted(graph):
        if name not in seen:
            visit(name, [name])
    assert circles == []


def _unit(module: str) -> str:
    """The subpackage (or top-level module) of the library that `module` belongs to."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def test_the_subpackages_depend_on_each_other_in_one_direction() -> None:
    """Concerns are layered: no circle of subpackages (or top-level modules) importing each other, the
    package's own __init__ (the public interface, which imports everything) aside."""
    modules = {_module_name(path): path for path in PACKAGE.rglob("*.py")}
    depends: dict[str, set[str]] = {}
    for name, path in modules.items():
        if name in {"nexus_platform", "nexus_platform.__main__"}:
            continue
        for imported in _imports(path):
            if imported in modules and _unit(imported) != _unit(name) and imported != "nexus_platform":
                depends.setdefault(_unit(name), set()).add(_unit(imported))
    try:
        graphlib.TopologicalSorter(depends).prepare()
    except graphlib.CycleError as circle:
        pytest.fail(f"the subpackages import each other in a circle: {' -> '.join(circle.args[1])}")


def test_importing_the_library_builds_reads_and_registers_nothing() -> None:
    """No import hooks, no exit handlers, no log handlers, no threads, no files opened: only definitions
    (measured after the dependencies are imported: what they do at import is theirs)."""
    script = """
import atexit, logging, sys, threading, builtins
import litestar, msgspec, uvicorn
exits = atexit._ncallbacks()
opened = []
real_open = builtins.open
builtins.open = lambda *a, **k: (opened.append(a[0]), real_open(*a, **k))[1]
hooks, handlers, threads = list(sys.meta_path), list(logging.getLogger().handlers), threading.active_count()
import nexus_platform, nexus_platform.openai
assert sys.meta_path == hooks, sys.meta_path
assert logging.getLogger().handlers == handlers and logging.getLogger("nexus").handlers == []
assert threading.active_count() == threads
assert atexit._ncallbacks() == exits, atexit._ncallbacks()
assert [path for path in opened if "nexus_platform" not in str(path) and not str(path).endswith(".pyc")] == [], opened
print("clean")
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "clean"


@pytest.mark.parametrize("module", ["nexus_platform._rules", "nexus_platform._version"])
def test_the_files_the_template_reads_from_its_checkout_need_only_the_standard_library(module: str) -> None:
    path = SOURCE / (module.replace(".", "/") + ".py")
    assert {name.split(".")[0] for name in _imports(path)} <= set(sys.stdlib_module_names)
