# Managed by nexus-template: `copier update` replaces this file. Your code belongs in app/service.py.
"""The Nexus platform layer of this service. Import what app/service.py needs from here."""

from app.nexus.context import NexusContext, nexus_of
from app.nexus.correlation import current_request_id
from app.nexus.errors import ServiceError
from app.nexus.metadata import Model
from app.nexus.offload import cancelled, run_blocking
from app.nexus.readiness import CheckResult, ReadinessCheck
from app.nexus.spec import ServiceSpec

__all__ = [
    "CheckResult",
    "Model",
    "NexusContext",
    "ReadinessCheck",
    "ServiceError",
    "ServiceSpec",
    "cancelled",
    "current_request_id",
    "nexus_of",
    "run_blocking",
]
