"""Checked-in renders of the canonical answer sets, so a review shows what a template change does.

Refresh after an intended change with `make snapshots` (python -m tests.snapshots), then read the diff.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

from devtools.render import ROOT, copy_working_tree, load_answers, render

SNAPSHOTS = ROOT / "tests" / "snapshots"
CANONICAL = ["default", "gpu"]
# Values that change with every commit or checkout, not with the template's content.
_VOLATILE = [
    (re.compile(r"^_commit: .*$", re.MULTILINE), "_commit: <commit>"),
    (re.compile(r"^_src_path: .*$", re.MULTILINE), "_src_path: <template>"),
    # the README links a local template's docs by its path (tests/test_docs.py)
    (re.compile(r"file://\S+?/docs/"), "<template>/docs/"),
    (re.compile(r'^    template_version=".*",$', re.MULTILINE), '    template_version="<commit>",'),
    # the library's wheel changes with every change of its code (tests/test_wheel.py checks this hash)
    (
        re.compile(r"^(nexus-ai-platform==\S+ \\\n    --hash=sha256:)[0-9a-f]{64}", re.MULTILINE),
        r"\1<the wheel's>",
    ),
    # links to the docs of the template release (or commit) the service was rendered from
    (re.compile(r"/blob/[0-9a-f]{7,40}/"), "/blob/<commit>/"),
]


def normalised(text: str) -> str:
    for pattern, replacement in _VOLATILE:
        text = pattern.sub(replacement, text)
    return text


def tree(root: Path) -> dict[str, str]:
    return {
        str(path.relative_to(root)): normalised(path.read_text())
        for path in sorted(root.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
    }


def render_canonical(template: Path, workdir: Path, name: str) -> Path:
    return render(template, workdir / name, load_answers(name))


def main() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        template = copy_working_tree(Path(scratch) / "template")
        for name in CANONICAL:
            rendered = tree(render_canonical(template, Path(scratch), name))
            target = SNAPSHOTS / name
            shutil.rmtree(target, ignore_errors=True)
            for relative, text in rendered.items():
                (target / relative).parent.mkdir(parents=True, exist_ok=True)
                (target / relative).write_text(text)
            print(f"refreshed {target.relative_to(ROOT)} ({len(rendered)} files)")


if __name__ == "__main__":
    main()
