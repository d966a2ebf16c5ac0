"""Every update, after it (idempotent): each OpenAI capability the service offers has its module.

Up to v0.2.0 a capability was a name in the metadata only. Now each of the OpenAI ones that
release/service.env offers is served by the platform's route around the service's module
app/capabilities/<module>.py (nexus_platform/_rules.py names it), and start-up stops without it. `copier copy` makes
those modules from the template's examples; an update never renders app/capabilities/ (copier.yml's
`_exclude`), so a service that offers such a capability and has no module gets the example here, once,
with one line saying so. A service that wraps a backend (the answer backend=openai) needs none. Runs in
the service folder:
    python migrations/capability_modules.py TEMPLATE_ROOT .copier-answers.yml
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import jinja2  # copier's own dependency: the examples are rendered the way copier renders them
import yaml

FACTS = Path("release/service.env")
MODULES = Path("app/capabilities")
# the one table of the OpenAI capabilities and their modules, in the release's library source
RULES = Path("nexus-ai-platform/src/nexus_platform/_rules.py")


def facts() -> dict[str, str]:
    lines = FACTS.read_text().splitlines() if FACTS.is_file() else []
    return dict(line.split("=", 1) for line in lines if "=" in line and not line.lstrip().startswith("#"))


def capability_modules(template_root: Path) -> dict[str, str]:
    """capability -> its module's name, from the release's nexus_platform/_rules.py (standard library
    only: loaded from its file, the library is not installed where copier runs)."""
    spec = importlib.util.spec_from_file_location("nexus_release_rules", template_root / RULES)
    assert spec is not None
    assert spec.loader is not None
    rules = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(rules)
    return {name: capability.module for name, capability in rules.OPENAI_CAPABILITIES.items()}


def examples(template_root: Path) -> tuple[Path, dict[str, tuple[str, Path]]]:
    """(the examples' folder, capability -> (module file name, its example))."""
    (folder,) = [
        path for path in (template_root / "template" / "app").iterdir() if "capabilities" in path.name
    ]
    found = {}
    for capability, module in capability_modules(template_root).items():
        example = folder / f"{{% if '{capability}' in capabilities %}}{module}.py{{% endif %}}.jinja"
        if example.is_file():
            found[capability] = (f"{module}.py", example)
    return folder, found


if __name__ == "__main__":
    template_root, answers_file = Path(sys.argv[1]), Path(sys.argv[2])
    answers = yaml.safe_load(answers_file.read_text()) or {}
    service = facts()
    offered = [name.strip() for name in service.get("SERVICE_CAPABILITIES", "").split(",") if name.strip()]
    folder, known = examples(template_root)
    if answers.get("backend", "none") != "openai":
        # plain Python files, not HTML: nothing to escape
        environment = jinja2.Environment(keep_trailing_newline=True, undefined=jinja2.StrictUndefined)  # noqa: S701
        context = {"owner": service.get("SERVICE_OWNER", ""), "capabilities": offered}
        for capability in offered:
            if capability not in known:
                continue
            name, example = known[capability]
            if (MODULES / name).exists():
                continue
            MODULES.mkdir(parents=True, exist_ok=True)
            if not (MODULES / "__init__.py").exists():
                (MODULES / "__init__.py").write_text((folder / "__init__.py").read_text())
            (MODULES / name).write_text(environment.from_string(example.read_text()).render(context))
            print(
                f"migration: {FACTS} offers {capability}, so {MODULES / name} was created from the template's "
                f"example: replace it with your implementation, or take {capability} out of SERVICE_CAPABILITIES",
                file=sys.stderr,
            )
