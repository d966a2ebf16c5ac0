"""Every use of copier's internals by the template's extensions, in one place.

Checked against copier 9.19.1; tests/test_compat.py fails when an upstream release changes one of them.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

from copier._user_data import Question  # private module: the class copier validates each answer with

__all__ = ["COPIER_CHECKED", "question_being_answered", "running_copier_cli"]

COPIER_CHECKED = "9.19.1"


def running_copier_cli() -> bool:
    """True in the `copier` command (console script or `python -m copier`), False for in-process run_copy."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    return Path(sys.argv[0] if sys.argv else "").name == "copier" or (
        spec is not None and spec.name == "copier.__main__"
    )


def question_being_answered(trace: types.TracebackType | None) -> tuple[str, str] | None:
    """(name, type) of the copier question whose answer raised, from the frames of the traceback."""
    while trace is not None:
        owner = trace.tb_frame.f_locals.get("self")
        if isinstance(owner, Question):
            return owner.var_name, owner.type
        trace = trace.tb_next
    return None
