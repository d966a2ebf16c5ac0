"""v0.4.0, after the update (idempotent): the platform is the nexus-ai-platform library, app/nexus/ goes.

Up to v0.3.0 the platform was rendered into every service as app/nexus/; from v0.4.0 it is the versioned
library `nexus_platform`, pinned in requirements.txt. The update removes the template's app/nexus/ files;
this migration does what a merge cannot:

1. An app/nexus/ file the service had edited is put back where it was (copier deletes edited and unedited
   files alike) and named: its change belongs in app/service.py now (or in a change to nexus-ai-platform),
   then the file is deleted. `nexus-template update` keeps and reports such a file itself (`review`);
   this makes plain `copier update` keep it too.
2. The service's own Python files (every .py file git tracks or would track, app/nexus/ left out)
   import the platform from `nexus_platform` instead of `app.nexus`: `from app.nexus import X` and
   `from app.nexus.openai import Y` become `from nexus_platform import X` / `from nexus_platform.openai
   import Y` (the library's public names are a superset of app.nexus's). An import from an internal module
   (`from app.nexus._errors import ServiceError`) becomes the public import when every name it takes is
   public, else the library's internal module that now holds those names (said so: internals change in
   any release). What cannot be mapped (a module v0.4.0 deleted, `import app.nexus` used by attribute, a
   name the library no longer has) is left as it is and named with its line, as is a string that still
   names app.nexus (a mock target, say).

It prints one line per thing it did or could not do. Runs in the service folder:
    python migrations/v0_4_0.py TEMPLATE_ROOT .copier-answers.yml VERSION_FROM
"""

from __future__ import annotations

import ast
import io
import re
import subprocess
import sys
import tokenize
from pathlib import Path
from tempfile import TemporaryDirectory

import yaml

PLATFORM = Path("app/nexus")
LIBRARY = Path("nexus-ai-platform/src/nexus_platform")
PREFIX = "migration v0.4.0:"
# app.nexus's internal modules (and, up to v0.2.0, their public names without "_") -> the library's
_MOVED = {
    "_factory": "_app",
    "_config": "_config.settings",
    "_facts": "_config.facts",
    "_settings_docs": "_config.docs",
    "_validation": "_config.validation",
    "_server": "_server.drain",
    "_serving": "_server.config",
    "_compat": "_compat",
    "_protocol": "_server.protocol",
    "_etcd": "_registration.etcd",
    "_registration": "_registration.registrar",
    "_capabilities": "openai._capabilities",
    **{
        f"_{name}": f"_http.{name}"
        for name in ("exchange", "content", "encoded", "errors", "streaming", "openapi")
    },
    **{f"_{name}": f"_edge.{name}" for name in ("asgi", "observe")},
    **{f"_{name}": f"_probes.{name}" for name in ("probes", "readiness", "checks", "metadata", "models")},
    **{
        f"_{name}": f"_observability.{name}"
        for name in ("logs", "metrics", "tracing", "correlation", "redaction")
    },
}
_FROM_MODULE = re.compile(r"from\s+(\.*[\w.]*)\s+import\b")
_IMPORT_MODULE = re.compile(r"import\s+([\w.]+)\s+as\b")


def git(*args: str) -> str:
    return subprocess.run(["git", *args], capture_output=True, text=True, check=True).stdout


def say(message: str) -> None:
    print(f"{PREFIX} {message}", file=sys.stderr)


# --- 1. edited platform files are kept -----------------------------------------------------------------


def old_render(answers_file: str, version_from: str) -> dict[str, bytes]:
    """app/nexus/ as the service's template version rendered it, from its answers before the update."""
    from copier import run_copy  # the migration runs under copier's Python  # noqa: PLC0415

    answers = yaml.safe_load(git("show", f"HEAD:./{answers_file}")) or {}
    with TemporaryDirectory(prefix="nexus-v0.4.0-migration-") as temp:
        run_copy(
            str(answers["_src_path"]),
            temp,
            data={name: value for name, value in answers.items() if not name.startswith("_")},
            defaults=True,
            unsafe=True,
            quiet=True,
            vcs_ref=version_from,
        )
        rendered = Path(temp) / PLATFORM
        return {
            (PLATFORM / path.relative_to(rendered)).as_posix(): path.read_bytes()
            for path in rendered.rglob("*")
            if path.is_file()
        }


def keep_edited_platform_files(answers_file: str, version_from: str) -> None:
    committed = git("ls-tree", "-r", "--name-only", "HEAD", "--", f"{PLATFORM}/").splitlines()
    removed = [path for path in committed if not Path(path).exists()]
    if not removed:
        return
    template = old_render(answers_file, version_from)
    for path in removed:
        content = subprocess.run(["git", "show", f"HEAD:./{path}"], capture_output=True, check=True).stdout
        if path not in template or template[path] == content:
            continue  # the template's own file (or one copier did not remove): gone, as the release says
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_bytes(content)
        say(
            f"{path}: removed by v0.4.0 (the platform is the nexus-ai-platform library now) but edited here: "
            "your version is kept; move your change into app/service.py, then delete it"
        )


# --- 2. imports of app.nexus become imports of nexus_platform ------------------------------------------


class Library:
    """What the release's nexus_platform offers: its public names and its modules' top-level names."""

    def __init__(self, template_root: Path) -> None:
        self.source = template_root / LIBRARY
        self.public = {"nexus_platform": self._all(""), "nexus_platform.openai": self._all("openai")}

    def _file(self, module: str) -> Path | None:
        base = self.source.joinpath(*module.split(".")) if module else self.source
        found = [path for path in (base.with_suffix(".py"), base / "__init__.py") if path.is_file()]
        return found[0] if found else None

    def _all(self, module: str) -> set[str]:
        path = self._file(module)
        for node in ast.parse(path.read_text()).body if path else []:
            if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "__all__" for t in node.targets):
                return set(ast.literal_eval(node.value))
        return set()

    def names(self, module: str) -> set[str] | None:
        """The names bound at the top level of nexus_platform.<module>, or None when it does not exist."""
        path = self._file(module)
        if path is None:
            return None
        bound: set[str] = set()
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                bound.add(node.name)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                bound.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
            elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                bound.update(
                    name.id for target in targets for name in ast.walk(target) if isinstance(name, ast.Name)
                )
        return bound

    def target(self, module: str, names: list[str]) -> tuple[str | None, str]:
        """(the nexus_platform module to import `names` from, or None; why, when it is internal or None)."""
        openai = module == "app.nexus.openai" or module.startswith("app.nexus.openai.")
        package = "nexus_platform.openai" if openai else "nexus_platform"
        public = self.public[package] | (set() if openai else {"openai"})
        missing = sorted(set(names) - public)
        if module in {"app.nexus", "app.nexus.openai"}:
            return (package, "") if not missing else (None, f"{package} has no public {', '.join(missing)}")
        if names and not missing:
            return package, ""  # an internal module's names that are public now: the public import
        first, *rest = module.removeprefix("app.nexus.openai." if openai else "app.nexus.").split(".")
        private = "_" + first.lstrip("_")  # up to v0.2.0 the modules had public names (app.nexus.config)
        moved = ".".join([f"openai.{private}" if openai else _MOVED.get(private, private), *rest])
        bound = self.names(moved)
        if bound is None:
            return None, f"v0.4.0 has no counterpart of {module}"
        if absent := sorted(set(names) - bound):
            return None, f"nexus_platform.{moved} has no {', '.join(absent)}"
        return f"nexus_platform.{moved}", "an internal module of the library: it may change in any release"


def absolute(module: str | None, level: int, path: Path) -> str:
    """The absolute name of an import's module (relative imports resolved from the file's package)."""
    if not level:
        return module or ""
    package = list(path.parent.parts)
    base = package[: len(package) - (level - 1)] if level > 1 else package
    return ".".join([*base, *([module] if module else [])])


def planned_edit(
    node: ast.Import | ast.ImportFrom, path: Path, line: str, library: Library
) -> tuple[int, int, str, str] | None:
    """(start, end, new module, what was done) of the module name in `line` for one import of app.nexus;
    None (said why) when it cannot be rewritten, or is no import of app.nexus."""
    if isinstance(node, ast.ImportFrom):
        module, pattern, names = (
            absolute(node.module, node.level, path),
            _FROM_MODULE,
            [a.name for a in node.names],
        )
    else:
        nexus = [alias for alias in node.names if alias.name.split(".")[:2] == ["app", "nexus"]]
        if not nexus:
            return None
        if (
            len(node.names) > 1
            or not nexus[0].asname
            or nexus[0].name not in {"app.nexus", "app.nexus.openai"}
        ):
            say(
                f"{path}:{node.lineno}: `import {nexus[0].name}` not rewritten: import from nexus_platform by hand"
            )
            return None
        module, pattern, names = nexus[0].name, _IMPORT_MODULE, []
    if module != "app.nexus" and not module.startswith("app.nexus."):
        return None
    if module == "app.nexus" and any(name.startswith("_") for name in names):
        say(
            f"{path}:{node.lineno}: imports internal modules of app.nexus: not rewritten, use nexus_platform's names"
        )
        return None
    target, why = library.target(module, names)
    match = pattern.match(line, node.col_offset) if target else None
    if target is None or match is None:
        say(
            f"{path}:{node.lineno}: the import of {module} was not rewritten: {why or 'it spans lines oddly'}"
        )
        return None
    return (
        match.start(1),
        match.end(1),
        target,
        f"{module} -> {target} (line {node.lineno}{'; ' + why if why else ''})",
    )


def rewrite(path: Path, library: Library) -> None:
    text = path.read_text()
    if "nexus" not in text:
        return
    try:
        tree = ast.parse(text)
    except SyntaxError as error:
        if "app.nexus" in text or "from .nexus" in text:
            say(f"{path}: not valid Python (line {error.lineno}), its app.nexus imports were not rewritten")
        return
    lines = text.splitlines(keepends=True)
    edits = [
        (node.lineno - 1, planned)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Import, ast.ImportFrom))
        and (planned := planned_edit(node, path, lines[node.lineno - 1], library))
    ]
    for index, (start, end, target, _) in sorted(edits, reverse=True):
        lines[index] = lines[index][:start] + target + lines[index][end:]
    if edits:
        path.write_text("".join(lines))
        say(f"{path}: imports rewritten: {', '.join(done for _, (*_, done) in sorted(edits))}")
    for token in tokenize.generate_tokens(io.StringIO("".join(lines)).readline):
        if token.type == tokenize.STRING and "app.nexus" in token.string:
            say(f"{path}:{token.start[0]}: a string still names app.nexus: point it at nexus_platform")


def service_python_files() -> list[Path]:
    listed = git("ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", "*.py").split("\0")
    return [
        Path(name)
        for name in sorted(set(listed))
        if name and Path(name).is_file() and not Path(name).is_relative_to(PLATFORM)
    ]


if __name__ == "__main__":
    template_root, answers_file, version_from = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    keep_edited_platform_files(answers_file, version_from)
    library = Library(template_root)
    for python_file in service_python_files():
        rewrite(python_file, library)
