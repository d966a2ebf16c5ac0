"""Refresh the lock files: template/requirements.lock.jinja (the lock a new service starts with, for
every answer set) and requirements-dev.lock (the maintainers' environment). `make lock`; needs PyPI.

A service's lock is its own (created once, refreshed by `python -m app.nexus lock` in the service). The
template's copy is built from real renders: each canonical answer set is rendered and locked with that
command, and the locks are merged into one Jinja file where entries only some answer sets need are
wrapped in the same conditions as in requirements.txt.jinja.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from pathlib import Path

from devtools.render import PYTHON, ROOT, copy_working_tree, load_answers, render
from tests.variants import appended_if

TEMPLATE_LOCK = ROOT / "template" / "requirements.lock.jinja"
DEV_LOCK = ROOT / "requirements-dev.lock"
# answer set -> the Jinja condition under which its extra entries render
VARIANTS = {"default": None, "gpu": "gpu"}
_ENTRY_START = re.compile(r"^[A-Za-z0-9]")


def entries(lock: str) -> tuple[str, dict[str, str]]:
    """(header, name -> the entry's lines) of a lock written by `python -m app.nexus lock`."""
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


def lock_template() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        template = copy_working_tree(Path(scratch) / "template")
        locks = {}
        for name in VARIANTS:
            service = render(template, Path(scratch) / name, load_answers(name))
            subprocess.run([PYTHON, "-m", "app.nexus", "lock"], cwd=service, check=True)
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


if __name__ == "__main__":
    lock_template()
    lock_dev()
