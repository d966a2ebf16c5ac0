"""The rendered services pin what the maintainers' environment tests them with."""

from __future__ import annotations

import re
from importlib.metadata import version

import pytest

from devtools.render import ROOT

PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==([^\s;]+)", re.MULTILINE)
PINNED_FILES = ["template/requirements.txt.jinja", "template/requirements-dev.txt"]


def pins() -> list[tuple[str, str, str]]:
    return [
        (path, name, pinned)
        for path in PINNED_FILES
        for name, pinned in PIN.findall((ROOT / path).read_text())
    ]


@pytest.mark.parametrize(("path", "name", "pinned"), pins(), ids=[f"{pin[1]}" for pin in pins()])
def test_rendered_pins_match_the_tested_versions(path: str, name: str, pinned: str) -> None:
    assert version(name) == pinned, f"{path} pins {name}=={pinned}; the dev environment has {version(name)}"
