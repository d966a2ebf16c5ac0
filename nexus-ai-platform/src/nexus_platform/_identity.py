"""What the template answers say a service is, handed to the platform as data.

A rendered service's `app/main.py` (the template's file, rewritten by every `copier update`) builds an
`Identity` from its answers and passes it to `create_app`; nothing of a service is baked into the
platform's code. The service's own facts (version, description, owner, capabilities) are not here: they
are read from its `release/service.env` (`facts_file`), which the service edits.
"""

from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from nexus_platform._sizing import workload_defaults

__all__ = ["Identity"]


@dataclass(frozen=True, kw_only=True)
class Identity:
    """The service as rendered: its name and port, the GPUs and backend it was made for, whether it
    registers in etcd, and the defaults of the answer-derived settings (each overridable from the
    environment, e.g. SERVICE_PORT)."""

    name: str
    facts_file: Path
    port: int = 9000
    # GPUs the service needs to be ready (GPU_MIN_COUNT's default); 0: it runs without GPUs
    gpus: int = 0
    # "openai": the OpenAI capabilities forward to the OpenAI-compatible backend at BACKEND_URL
    backend: Literal["none", "openai"] = "none"
    # "gateway": the platform's gateway (nexus_platform.gateway), sized for everyone's traffic
    role: Literal["service", "gateway"] = "service"
    # the etcd registration (its settings, ETCD_URL and the rest, are accepted only then)
    registration: bool = False
    backend_health_path: str = "/health"
    drain_seconds: float = 5.0
    shutdown_grace_seconds: float = 20.0
    # the template release the service was rendered from (in /v1/metadata and the build metric)
    template_version: str = "unreleased"
    # the service's package: its OpenAI capability modules are <package>.capabilities.<name> (a test suite
    # names its own package to serve test implementations)
    package: str = "app"

    @property
    def gpu(self) -> bool:
        return self.gpus > 0

    @property
    def features(self) -> tuple[str, ...]:
        """The optional features it was rendered with (nexus_platform._config.settings.FEATURE_ANSWERS)."""
        return tuple(name for name, on in (("gpu", self.gpu), ("registration", self.registration)) if on)

    def setting_defaults(self, capabilities: Collection[str] = ()) -> dict[str, object]:
        """The platform settings whose default comes from an answer, by field name; with the offered
        `capabilities` (release/service.env's), also those sized for the workload
        (nexus_platform._sizing)."""
        defaults: dict[str, object] = {
            "service_name": self.name,
            "service_port": self.port,
            "backend_health_path": self.backend_health_path,
            "drain_seconds": float(self.drain_seconds),
            "shutdown_grace_seconds": float(self.shutdown_grace_seconds),
            "gpu_min_count": self.gpus,
            # a wrapper forwards chat requests to a backend that may fetch their image URLs itself
            "image_url_check": self.backend == "openai",
            # a wrapper's clients send their backend's own fields (Ollama's options, vLLM's top_k)
            "strict_openai_fields": self.backend != "openai",
        }
        if capabilities or self.backend == "openai" or self.role == "gateway":
            defaults.update(workload_defaults(capabilities, self.backend, self.role))
        return defaults
