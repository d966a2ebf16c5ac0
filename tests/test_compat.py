"""The upstream internals that extensions/_compat.py relies on are still there, and still behave."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import copier
import pytest
from copier._jinja_ext import SandboxedEnvironment
from copier._user_data import AnswersMap, Question

from devtools.render import ROOT, render
from tests.extension_modules import load_extension


def test_the_checked_copier_is_the_pinned_one() -> None:
    pinned = re.search(r'"copier==([^"]+)"', (ROOT / "pyproject.toml").read_text())
    assert pinned is not None
    assert load_extension("_compat").COPIER_CHECKED == pinned.group(1) == copier.__version__, (
        "copier changed: re-check extensions/_compat.py against it, then update COPIER_CHECKED"
    )


def test_a_question_is_found_in_the_traceback_of_a_rejected_answer() -> None:
    question = Question(
        var_name="port", type="int", answers=AnswersMap(), context={}, jinja_env=SandboxedEnvironment()
    )
    with pytest.raises(ValueError, match="abc") as raised:
        question.cast_answer("abc")
    assert load_extension("_compat").question_being_answered(raised.tb) == ("port", "int")


def test_rendering_in_process_leaves_the_excepthook_alone(template_repo: Path, tmp_path: Path) -> None:
    before = sys.excepthook
    render(template_repo, tmp_path / "service", {"service_name": "in-process"})
    assert sys.excepthook is before
    assert not load_extension("_compat").running_copier_cli()
