# Managed by nexus-template: `copier update` replaces this file. Put your tests in your own test modules.
"""requirements.lock (what the image installs) holds every pin of the requirement files, with hashes."""

from pathlib import Path

from app.nexus._locking import lock_problems

ROOT = Path(__file__).resolve().parents[1]


def test_the_lock_is_current() -> None:
    problems = lock_problems(ROOT)
    assert not problems, "\n".join(problems)
