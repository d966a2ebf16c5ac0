"""Derived names and derived answers that several rendered files need, computed once from the answers.

A derived answer (`base_image`, `cpu_limit`, `memory_limit`) recorded as `auto` follows its sources:
rendering sees the value derived from `gpu` and `python_version`, the answers file keeps `auto`, so a
later `--data gpu=true` brings the CUDA image and GPU-sized limits along. A value the user typed is
kept as typed. The hook also runs while questions are still being asked (before `service_name`
exists), hence `.get`.
"""

from __future__ import annotations

import functools
import importlib.util
import re
import sys
import tomllib
import types
import zlib
from pathlib import Path
from typing import Any

from copier._vcs import get_repo  # copier's own expansion of gh:/gl: shortcuts
from copier_template_extensions import ContextHook

# copier records `git describe --tags`: "v0.2.0" on a release, "v0.2.0-3-g1a2b3c4" between releases
_BETWEEN_RELEASES = re.compile(r"-\d+-g([0-9a-f]+)$")
# a git address with a web page per file: https://host/org/repo(.git) or git@host:org/repo(.git)
_WEB_HOSTED = re.compile(r"^(?:https?://(?:[^@/]+@)?|git@)(?P<host>[^/:]+)[/:](?P<path>[^:]+?)(?:\.git)?/?$")


@functools.lru_cache(maxsize=64)
def _repository(src_path: str) -> str:
    """copier's reading of a template source (`gh:` shortcuts expanded, a local checkout recognised): it runs
    git, and copier renders the context of every file, so each source is read once per process."""
    return get_repo(src_path) or src_path


def template_git_url(src_path: str | None) -> str:
    """The template's address as git (and pip's `git+`) reads it: copier's shortcuts expanded as copier
    expands them (`gh:org/repo`), an ssh address in URL form, a local path as a file:// URL."""
    if not src_path:
        return ""
    url = _repository(src_path)
    if scp_like := re.match(r"^(?P<user>[\w.-]+)@(?P<host>[^/:]+):(?P<path>.+)$", url):
        return f"ssh://{scp_like['user']}@{scp_like['host']}/{scp_like['path']}"
    if "://" not in url:
        return Path(url).resolve().as_uri()
    return url


def docs_base_url(src_path: str | None) -> str:
    """What docs_base_url `auto` stands for: the docs/ folder of release {ref} on the template's git host
    (GitLab's page layout for gitlab.com, GitHub's for any other host), a local template's docs/ folder."""
    url = _repository(src_path) if src_path else ""
    if hosted := _WEB_HOSTED.match(url or ""):
        page = "-/blob" if hosted["host"] == "gitlab.com" else "blob"
        return f"https://{hosted['host']}/{hosted['path']}/{page}/{{ref}}/docs"
    return f"{template_git_url(src_path)}/docs" if url else ""


@functools.cache
def uv_version() -> str:
    """The uv that nexus-template runs with (pyproject.toml's pin), for the workflows that install it."""
    project = tomllib.loads(Path(__file__).resolve().parents[1].joinpath("pyproject.toml").read_text())
    dependencies: list[str] = project["project"]["dependencies"]
    return next(pin.partition("==")[2] for pin in dependencies if pin.startswith("uv=="))


def template_docs(base_url: str, commit: str | None) -> str:
    """The docs of the template release (or commit) a service was rendered from: docs_base_url with its
    {ref} filled in. Computed once here; the generated README links `{{ template_docs }}/<page>.md`."""
    between = _BETWEEN_RELEASES.search(commit or "")
    ref = between.group(1) if between else commit or "HEAD"
    return base_url.replace("{ref}", ref)


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


def _load_platform() -> types.ModuleType:
    """extensions/_platform.py (copier loads extensions by path, so a sibling is not importable by name), once
    per template checkout: one process may render from several (copier's clones are temporary)."""
    path = Path(__file__).resolve().with_name("_platform.py")
    name = f"nexus_template_extensions_platform_{zlib.crc32(str(path).encode()):08x}"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules[name] = module
    return sys.modules[name]


_platform = _load_platform()
# The capabilities the platform serves as OpenAI routes (nexus_platform/_rules.py), each with the name of
# the module that implements it in a rendered service (app/capabilities/<module>.py).
OPENAI_CAPABILITIES: dict[str, str] = {
    name: capability.module for name, capability in _platform.platform_rules().OPENAI_CAPABILITIES.items()
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
        # the service's own additions, merged by Compose (`-f compose_file -f compose_override_file`)
        "compose_override_file": f"docker-compose.{service_name}.override.yml",
        "container_name": f"nexus-{service_name}",
        "image_name": f"nexus/{service_name}",
        # kebab-case distribution name of the service's pyproject
        "dist_name": f"nexus-{service_name}",
    }


# The shutdown budget, computed once: the app's defaults (DRAIN_SECONDS, SHUTDOWN_GRACE_SECONDS in
# nexus_platform's settings and .env.example), compose's stop_grace_period and Kubernetes' preStop and
# terminationGracePeriodSeconds are all rendered from here, so they cannot disagree.
DRAIN_SECONDS = 5
SHUTDOWN_GRACE_SECONDS = 20
PRE_STOP_SECONDS = 3  # Kubernetes: a head start for endpoint removal before the process sees SIGTERM
KILL_MARGIN_SECONDS = 5  # what the engine waits beyond the service's own budget before SIGKILL
# The non-root user and group the image runs as (Dockerfile USER, Kubernetes securityContext)
RUN_AS_UID = 10001


def deployment_facts() -> dict[str, int]:
    return {
        "drain_seconds": DRAIN_SECONDS,
        "shutdown_grace_seconds": SHUTDOWN_GRACE_SECONDS,
        "pre_stop_seconds": PRE_STOP_SECONDS,
        "stop_grace_period_seconds": DRAIN_SECONDS + SHUTDOWN_GRACE_SECONDS + KILL_MARGIN_SECONDS,
        "termination_grace_period_seconds": PRE_STOP_SECONDS
        + DRAIN_SECONDS
        + SHUTDOWN_GRACE_SECONDS
        + KILL_MARGIN_SECONDS,
        "run_as_uid": RUN_AS_UID,
    }


def derive(context: dict[str, Any]) -> None:
    """Add every derived value to `context` (the answers so far; copier's render context)."""
    service_name = context.get("service_name")
    answers = context.get("_copier_answers") or {}
    base_url = context.get("docs_base_url", AUTO)
    source = answers.get("_src_path")
    context["template_git_url"] = template_git_url(source)
    context["uv_version"] = uv_version()
    context["template_docs"] = template_docs(
        docs_base_url(source) if base_url == AUTO else base_url, answers.get("_commit")
    )
    context.update(deployment_facts())
    context["platform_version"] = _platform.platform_version()
    context["openai_capabilities"] = openai_capabilities(context.get("capabilities"))
    # a wrapper of an OpenAI-compatible backend checks the backend's model list for readiness
    context["backend_health_path"] = "/v1/models" if context.get("backend") == "openai" else "/"
    if isinstance(service_name, str) and service_name:
        context.update(derived_names(service_name))
    if "python_version" in context:
        derived = derived_answers(context.get("gpu"), context["python_version"])
        context.update({name: derived[name] for name in derived if context.get(name) == AUTO})


class ContextUpdater(ContextHook):
    def hook(self, context: dict[str, Any]) -> None:
        derive(context)
