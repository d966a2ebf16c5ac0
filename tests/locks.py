"""Refresh the lock files: template/requirements.lock.jinja (the lock a new service starts with, for
every answer set) and requirements-dev.lock (the maintainers' environment). `make lock`; needs PyPI.

A service's lock is its own (created once, refreshed by `python -m nexus_platform lock` in the service).
The template's copy is built from real renders: each canonical answer set is rendered and locked with that
command, and the locks are merged into one Jinja file where entries only some answer sets need are
wrapped in the same conditions as in requirements.txt.jinja. The nexus-ai-platform entry is the wheel that
`make wheel` builds from this checkout (dist/), so its hash is the one a release publishes.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
import tomllib
from pathlib import Path

from devtools.render import PYTHON, ROOT, copy_working_tree, load_answers, render
from devtools.wheel import DIST, build_wheel
from tests.variants import appended_if

TEMPLATE_LOCK = ROOT / "template" / "requirements.lock.jinja"
DEV_LOCK = ROOT / "requirements-dev.lock"
# what the template-update workflow installs copier from (`pip install --require-hashes`)
COPIER_LOCK = ROOT / "template" / ".github" / "requirements-copier.txt"
# answer set -> the Jinja condition under which its extra entries render
VARIANTS = {"default": None, "gpu": "gpu"}
_ENTRY_START = re.compile(r"^[A-Za-z0-9]")
PLATFORM_DISTRIBUTION = "nexus-ai-platform"


def entries(lock: str) -> tuple[str, dict[str, str]]:
    """(header, name -> the entry's lines) of a lock written by `python -m nexus_platform lock`."""
    header, blocks, name = [], {}, None
    for line in lock.splitlines(keepends=True):
        if _ENTRY_START.match(line):
            name = re.split(r"[=\s;]", line, maxsplit=1)[0].lower()
            blocks[name] = line
        elif name is None:
            header.append(line)
        else:
            blocks[name] += line
    return "".join(header), blocks


def merged_template(locks: dict[str, str]) -> str:
    header, base = entries(locks["default"])
    extra: dict[str, tuple[str, str]] = {}
    for variant, condition in VARIANTS.items():
        if condition is None:
            continue
        _, blocks = entries(locks[variant])
        for name, block in blocks.items():
            if name not in base:
                extra[name] = (condition, block)
            elif base[name] != block:
                raise SystemExit(f"{variant} locks {name} differently from default: {block!r}")
    text = header
    for name in sorted({*base, *extra}):
        if name in base:
            text += base[name]
        else:
            text = appended_if(text, *extra[name])
    return text


def _forget_platform(lock: Path) -> None:
    """Drop the library's entry from `lock`: uv keeps the hashes of an entry whose version still fits, and
    between releases the library changes under one version (a release's wheel never does)."""
    header, blocks = entries(lock.read_text())
    blocks.pop(PLATFORM_DISTRIBUTION, None)
    lock.write_text(header + "".join(blocks.values()))


def lock_template() -> None:
    build_wheel()
    environment = {**os.environ, "PIP_FIND_LINKS": str(DIST)}
    with tempfile.TemporaryDirectory() as scratch:
        template = copy_working_tree(Path(scratch) / "template")
        locks = {}
        for name in VARIANTS:
            service = render(template, Path(scratch) / name, load_answers(name))
            _forget_platform(service / "requirements.lock")
            subprocess.run([PYTHON, "-m", "nexus_platform", "lock"], cwd=service, env=environment, check=True)
            locks[name] = (service / "requirements.lock").read_text()
    TEMPLATE_LOCK.write_text(merged_template(locks))
    print(f"refreshed {TEMPLATE_LOCK.relative_to(ROOT)}")


def dev_lock_command(output: Path) -> list[str]:
    """uv resolving the maintainers' extra `dev` of pyproject.toml; versions already in `output` are kept."""
    uv = str(Path(PYTHON).with_name("uv"))
    return [
        uv, "pip", "compile", "--quiet", "--universal", "--generate-hashes", "--no-annotate",
        "--python-version", "3.11", "--extra", "dev", "--custom-compile-command", "make lock",
        "pyproject.toml", "--output-file", str(output),
    ]  # fmt: skip


def lock_dev() -> None:
    subprocess.run(dev_lock_command(DEV_LOCK), cwd=ROOT, check=True)
    print(f"refreshed {DEV_LOCK.relative_to(ROOT)}")


def copier_pins() -> str:
    """pyproject.toml's copier and copier-template-extensions pins, as requirement lines: the template's
    tests run with them, so services update with the same ones."""
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    return "".join(f"{pin}\n" for pin in dependencies if pin.startswith("copier"))


def copier_lock_command(output: Path) -> list[str]:
    """uv locking copier_pins() (read from stdin) for the runner's Python 3.11; versions already in `output`
    are kept."""
    uv = str(Path(PYTHON).with_name("uv"))
    return [
        uv, "pip", "compile", "--quiet", "--universal", "--generate-hashes", "--no-annotate",
        "--python-version", "3.11", "--custom-compile-command", "make lock (in nexus-template)",
        "-", "--output-file", str(output),
    ]  # fmt: skip


def lock_copier() -> None:
    subprocess.run(copier_lock_command(COPIER_LOCK), input=copier_pins(), text=True, cwd=ROOT, check=True)
    print(f"refreshed {COPIER_LOCK.relative_to(ROOT)}")


if __name__ == "__main__":
    lock_template()
    lock_dev()
    lock_copier()
