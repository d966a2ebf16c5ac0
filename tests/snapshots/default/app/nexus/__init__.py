# Managed by nexus-template: `copier update` replaces this file. Your code belongs in app/service.py.
"""The Nexus platform layer of this service. Its public interface is `__all__` below: import what
app/service.py and your tests need from `app.nexus` itself, and the OpenAI types from `app.nexus.openai`
(its own `__all__`). Everything else lives in `_` modules (`app.nexus._factory`, ...): internal,
they may change in any template release; removing a public name is a breaking change that the template's changelog announces
(tests/test_interface.py pins both lists).
"""

from app.nexus import _moved
from app.nexus._checks import http_dependency
from app.nexus._config import SECRET, ConfigError
from app.nexus._context import NexusContext, nexus_of
from app.nexus._correlation import current_request_id
from app.nexus._errors import ServiceError
from app.nexus._metadata import Model
from app.nexus._models import ModelProvider
from app.nexus._offload import cancelled, run_blocking
from app.nexus._readiness import CheckResult, ReadinessCheck
from app.nexus._spec import ServiceLifespan, ServiceSpec
from app.nexus._streaming import byte_stream, event_stream

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

_moved.install()
