"""Derived names that several rendered files need, computed once from the answers.

The hook also runs while questions are still being asked (before `service_name` exists), hence `.get`.
"""

from __future__ import annotations

from typing import Any

from copier_template_extensions import ContextHook

# Where the template's own documentation lives; rendered READMEs link to it.
TEMPLATE_DOCS = "https://github.com/nexus-ai/nexus-template/blob/main/docs"


def derived_names(service_name: str) -> dict[str, str]:
    return {
        # prefix of host-side variables for this service (MY_SERVICE_HOST_PORT in the compose file)
        "env_prefix": service_name.replace("-", "_").upper(),
        "compose_file": f"docker-compose.{service_name}.yml",
        # the service's own additions, merged by Compose (`-f compose_file -f compose_override_file`)
        "compose_override_file": f"docker-compose.{service_name}.override.yml",
        "container_name": f"nexus-{service_name}",
        "image_name": f"nexus/{service_name}",
        # kebab-case distribution name of the service's pyproject
        "dist_name": f"nexus-{service_name}",
    }


class ContextUpdater(ContextHook):
    def hook(self, context: dict[str, Any]) -> None:
        service_name = context.get("service_name")
        context["template_docs"] = TEMPLATE_DOCS
        if isinstance(service_name, str) and service_name:
            context.update(derived_names(service_name))
