# Managed by nexus-template: `copier update` replaces this file. Your code belongs in app/service.py.
"""The Nexus platform layer of this service. Its public interface is `__all__` below: import what
app/service.py and your tests need from `app.nexus` itself, and the OpenAI types from `app.nexus.openai`
(its own `__all__`). Everything else in `app.nexus.*` is internal and may change in any template
release; removing a public name is a breaking change that the template's changelog announces
(tests/test_interface.py pins both lists).
"""

from app.nexus.checks import http_dependency
from app.nexus.config import SECRET, ConfigError
from app.nexus.context import NexusContext, nexus_of
from app.nexus.correlation import current_request_id
from app.nexus.errors import ServiceError
from app.nexus.metadata import Model
from app.nexus.models import ModelProvider
from app.nexus.offload import cancelled, run_blocking
from app.nexus.readiness import CheckResult, ReadinessCheck
from app.nexus.spec import ServiceLifespan, ServiceSpec
from app.nexus.streaming import byte_stream, event_stream

__all__ = [
    "SECRET",
    "CheckResult",
    "ConfigError",
    "Model",
    "ModelProvider",
    "NexusContext",
    "ReadinessCheck",
    "ServiceError",
    "ServiceLifespan",
    "ServiceSpec",
    "byte_stream",
    "cancelled",
    "current_request_id",
    "event_stream",
    "http_dependency",
    "nexus_of",
    "run_blocking",
]
