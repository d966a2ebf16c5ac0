"""Real template histories and a monorepo of services, for update stories (the pattern of copier's
tests/test_updatediff.py). The `history` and `monorepo` fixtures live in tests/conftest.py."""

from __future__ import annotations

from pathlib import Path

import yaml

from devtools.render import copy_working_tree, git, render
from tests.edits import edit_file

__all__ = [
    "TemplateHistory",
    "answers",
    "append_line",
    "commit_all",
    "generate",
    "new_history",
    "new_monorepo",
    "status",
]


class TemplateHistory:
    """A template git repository whose versions are tags."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, relative: str, text: str) -> None:
        (self.path / relative).parent.mkdir(parents=True, exist_ok=True)
        (self.path / relative).write_text(text)

    def append(self, relative: str, text: str) -> None:
        self.write(relative, (self.path / relative).read_text() + text)

    def replace(self, relative: str, old: str, new: str, *, count: int = 1) -> None:
        """Replace the `count` occurrences of `old` (exactly that many, or AssertionError)."""
        edit_file(self.path / relative, (old, new), count=count)

    def remove(self, relative: str) -> None:
        git(self.path, "rm", "--quiet", relative)

    def rename(self, relative: str, new: str) -> None:
        (self.path / new).parent.mkdir(parents=True, exist_ok=True)
        git(self.path, "mv", relative, new)

    def release(self, version: str) -> str:
        git(self.path, "add", "--all")
        git(self.path, "commit", "--quiet", "--allow-empty", "--message", f"Release {version}")
        git(self.path, "tag", version)
        return version


def new_history(folder: Path) -> TemplateHistory:
    """The working tree as release v1.0.0, plus a template-owned file a later release can remove."""
    template = TemplateHistory(copy_working_tree(folder))
    template.write(
        "template/app/_legacy.py", "# Managed by nexus-template: `copier update` replaces this file.\n"
    )
    template.release("v1.0.0")
    return template


def new_monorepo(folder: Path) -> Path:
    """A git repository for services/<name>/, with one commit."""
    folder.mkdir()
    git(folder, "init", "--quiet", "--initial-branch=main")
    git(folder, "config", "user.name", "Service Author")
    git(folder, "config", "user.email", "author@nexus.invalid")
    (folder / "README.md").write_text("# the platform monorepo\n")
    commit_all(folder, "monorepo")
    return folder


def commit_all(repo: Path, message: str) -> None:
    git(repo, "add", "--all")
    git(repo, "commit", "--quiet", "--message", message)


def generate(template: Path, monorepo: Path, name: str, vcs_ref: str, **answers: object) -> Path:
    service = render(
        template, monorepo / "services" / name, {"service_name": name, **answers}, vcs_ref=vcs_ref
    )
    commit_all(monorepo, f"add {name}")
    return service


def answers(service: Path) -> dict:
    return yaml.safe_load((service / ".copier-answers.yml").read_text())


def append_line(path: Path, line: str) -> None:
    """A service author's edit: one line added at the end of a file."""
    path.write_text(path.read_text() + line + "\n")


def status(repo: Path) -> list[str]:
    """`git status --porcelain` lines (untracked files listed one by one)."""
    return git(repo, "status", "--porcelain", "--untracked-files=all").stdout.splitlines()
