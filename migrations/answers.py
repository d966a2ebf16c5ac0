"""Helpers for migrations that change answers in a service's .copier-answers.yml (run by copier's Python)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml


def rename_answer(
    answers_file: Path, old: str, new: str, convert: Callable[[Any], Any] = lambda value: value
) -> bool:
    """Rename answer `old` to `new` (converting its value); False when there was nothing to do.

    Idempotent: a file that already has `new`, or never had `old`, is left as it is.
    """
    answers = yaml.safe_load(answers_file.read_text()) or {}
    if old not in answers or new in answers:
        return False
    renamed = {
        (new if key == old else key): (convert(value) if key == old else value)
        for key, value in answers.items()
    }
    answers_file.write_text(yaml.safe_dump(renamed, sort_keys=False, allow_unicode=True))
    return True


def follow_derived(
    answers_file: Path, derive: Callable[[Any, Any], dict[str, Any]], auto: str = "auto"
) -> list[str]:
    """Set each derived answer equal to what `derive(gpu, python_version)` gives to `auto`; return their names.

    Idempotent: `auto` answers and values that differ (typed by someone) are left as they are.
    """
    answers = yaml.safe_load(answers_file.read_text()) or {}
    derived = derive(answers.get("gpu", False), answers.get("python_version", "3.11"))
    followed = [name for name, value in derived.items() if name in answers and str(answers[name]) == value]
    if followed:
        answers.update(dict.fromkeys(followed, auto))
        answers_file.write_text(yaml.safe_dump(answers, sort_keys=False, allow_unicode=True))
    return followed
