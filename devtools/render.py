"""Rendering the template the way users do, from a git copy of the working tree (tests, demo, bench).

Copier renders from git; copying the working tree (tracked and untracked, minus ignored files) into a
fresh repository and committing it means uncommitted template changes are what the tests see.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from copier import run_copy, run_update

ROOT = Path(__file__).resolve().parents[1]
# answer sets the template is tested with; each is a valid `copier copy --data-file`
ANSWERS = ROOT / "tests" / "answers"
PYTHON = sys.executable
GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "Template Tests",
    "GIT_AUTHOR_EMAIL": "tests@nexus.invalid",
    "GIT_COMMITTER_NAME": "Template Tests",
    "GIT_COMMITTER_EMAIL": "tests@nexus.invalid",
}


def answer_sets() -> list[str]:
    return sorted(path.stem for path in ANSWERS.glob("*.yml"))


def load_answers(name: str) -> dict[str, Any]:
    answers: dict[str, Any] = yaml.safe_load((ANSWERS / f"{name}.yml").read_text())
    return answers


def git(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", *args],
        cwd=cwd,
        env={**os.environ, **GIT_IDENTITY},
        capture_output=True,
        text=True,
        check=check,
    )


def working_tree_files() -> list[str]:
    listed = git(ROOT, "ls-files", "--cached", "--others", "--exclude-standard", "-z").stdout
    return [path for path in listed.split("\0") if path and (ROOT / path).is_file()]


def copy_working_tree_files(destination: Path) -> None:
    for relative in working_tree_files():
        target = destination / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / relative, target)


def copy_working_tree(destination: Path) -> Path:
    """A git repository at `destination` holding the current working tree, committed."""
    copy_working_tree_files(destination)
    git(destination, "init", "--quiet", "--initial-branch=main")
    git(destination, "add", "--all")
    git(destination, "commit", "--quiet", "--message", "template under test")
    return destination


def render(template: Path, destination: Path, answers: dict[str, Any], **options: Any) -> Path:
    """copier copy --trust --defaults with `answers`, from `template`'s HEAD unless vcs_ref says otherwise."""
    run_copy(
        str(template),
        destination,
        data=answers,
        defaults=True,
        unsafe=True,
        quiet=True,
        vcs_ref=options.pop("vcs_ref", "HEAD"),
        **options,
    )
    return destination


def update(service: Path, **options: Any) -> None:
    run_update(service, defaults=True, unsafe=True, quiet=True, overwrite=True, **options)


def run_python(cwd: Path, *args: str, timeout: float = 300, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PYTHON, *args],
        cwd=cwd,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
