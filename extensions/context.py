"""Derived names and derived answers that several rendered files need, computed once from the answers.

A derived answer (`base_image`, `cpu_limit`, `memory_limit`) recorded as `auto` follows its sources:
rendering sees the value derived from `gpu` and `python_version`, the answers file keeps `auto`, so a
later `--data gpu=true` brings the CUDA image and GPU-sized limits along. A value the user typed is
kept as typed. The hook also runs while questions are still being asked (before `service_name`
exists), hence `.get`.
"""

from __future__ import annotations

from typing import Any

from copier_template_extensions import ContextHook

# Where the template's own documentation lives; rendered READMEs link to it.
TEMPLATE_DOCS = "https://github.com/nexus-ai/nexus-template/blob/main/docs"
# The answer that means "derive me" (copier.yml's default for every derived answer).
AUTO = "auto"
# The CUDA runtime image used when `gpu` is on. It has no Python 3.11+; the Dockerfile installs the
# requested Python (python_version) into it.
CUDA_RUNTIME_IMAGE = "nvidia/cuda:12.8.1-runtime-ubuntu24.04"


def derived_answers(gpu: Any, python_version: Any) -> dict[str, str]:
    """What `auto` stands for, per derived answer."""
    return {
        "base_image": CUDA_RUNTIME_IMAGE if gpu else f"python:{python_version}-slim",
        "cpu_limit": "4" if gpu else "1",
        "memory_limit": "16Gi" if gpu else "512Mi",
    }


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
        if isinstance(service_name, str) and service_name:
            context.update(derived_names(service_name))
        if "python_version" in context:
            derived = derived_answers(context.get("gpu"), context["python_version"])
            context.update({name: derived[name] for name in derived if context.get(name) == AUTO})
