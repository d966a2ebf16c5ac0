"""Every update, before it (idempotent): the service's facts move from the answers to release/service.env.

Up to v0.2.0 version, description, owner and capabilities were answers baked into template-owned files.
They now live in the service-owned release/service.env, and the answers are asked only by `copier copy`
(an update drops them from .copier-answers.yml). A service that has no release/service.env yet gets it
here, rendered from the template's own seed with the service's recorded answers, so the update keeps
its values instead of the questions' defaults. Runs in the service folder:
    python migrations/service_facts.py TEMPLATE_ROOT .copier-answers.yml
"""

from __future__ import annotations

import sys
from pathlib import Path

import jinja2  # copier's own dependency: the seed is rendered the way copier renders it
import yaml

FACTS = Path("release/service.env")
SEED = Path("template/release/service.env.jinja")
ANSWERS = ("service_version", "service_description", "owner", "capabilities")


def facts_from_answers(template_root: Path, answers: dict) -> str:
    # a plain-text file, not HTML: nothing to escape
    environment = jinja2.Environment(  # noqa: S701
        keep_trailing_newline=True, undefined=jinja2.StrictUndefined
    )
    seed = environment.from_string((template_root / SEED).read_text())
    return seed.render({"kubernetes": True, **answers})


if __name__ == "__main__":
    template_root, answers_file = Path(sys.argv[1]), Path(sys.argv[2])
    answers = yaml.safe_load(answers_file.read_text()) or {}
    if not FACTS.exists() and all(name in answers for name in ANSWERS):
        FACTS.parent.mkdir(parents=True, exist_ok=True)
        FACTS.write_text(facts_from_answers(template_root, answers))
        print(
            f"migration: version {answers['service_version']}, description, owner and capabilities moved "
            f"from the answers to {FACTS} (yours from now on: a release is an edit of SERVICE_VERSION there)",
            file=sys.stderr,
        )
