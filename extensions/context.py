"""Derived names that several rendered files need, computed once from the answers.

The hook also runs while questions are still being asked (before `service_name` exists), hence `.get`.
"""

from __future__ import annotations

from typing import Any

from copier_template_extensions import ContextHook

# Where the template's own documentation lives; rendered READMEs link to it.
TEMPLATE_DOCS = "https://github.com/nexus-ai/nexus-template/blob/main/docs"

# The capabilities the platform serves as OpenAI routes (app/nexus/openai/routes.py), each with the name
# of the module that implements it in a rendered service (app/capabilities/<module>.py).
OPENAI_CAPABILITIES = {
    "chat.completions": "chat_completions",
    "embeddings": "embeddings",
    "audio.speech": "audio_speech",
    "images.generations": "images_generations",
}


def openai_capabilities(capabilities: object) -> dict[str, str]:
    """The chosen capabilities that render OpenAI routes, in the order chosen -> their module names."""
    chosen = capabilities if isinstance(capabilities, list) else []
    return {name: OPENAI_CAPABILITIES[name] for name in chosen if name in OPENAI_CAPABILITIES}


def derived_names(service_name: str) -> dict[str, str]:
    return {
        # prefix of host-side variables for this service (MY_SERVICE_HOST_PORT in the compose file)
        "env_prefix": service_name.replace("-", "_").upper(),
        "compose_file": f"docker-compose.{service_name}.yml",
        "container_name": f"nexus-{service_name}",
        "image_name": f"nexus/{service_name}",
        # kebab-case distribution name of the service's pyproject
        "dist_name": f"nexus-{service_name}",
    }


class ContextUpdater(ContextHook):
    def hook(self, context: dict[str, Any]) -> None:
        service_name = context.get("service_name")
        context["template_docs"] = TEMPLATE_DOCS
        context["openai_capabilities"] = openai_capabilities(context.get("capabilities"))
        if isinstance(service_name, str) and service_name:
            context.update(derived_names(service_name))
