# Managed by nexus-template: `copier update` replaces this file. Your code belongs in app/service.py.
"""The Nexus platform layer of this service. Its public interface is `__all__` below: import what
app/service.py and your tests need from `app.nexus` itself. Everything else in `app.nexus.*` is internal
and may change in any template release; removing a name from `__all__` is a breaking change that the
template's changelog announces (tests/test_contract.py pins the list).
"""

from app.nexus.checks import http_dependency
from app.nexus.config import SECRET, ConfigError
from app.nexus.context import NexusContext, nexus_of
from app.nexus.correlation import current_request_id
from app.nexus.errors import ServiceError
from app.nexus.metadata import Model
from app.nexus.models import ModelProvider
from app.nexus.readiness import CheckResult, ReadinessCheck
from app.nexus.spec import ServiceLifespan, ServiceSpec

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
    "current_request_id",
    "http_dependency",
    "nexus_of",
]
