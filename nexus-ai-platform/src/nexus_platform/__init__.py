"""The Nexus platform: the HTTP edge, probes, metadata, OpenAI routes, logs, metrics, tracing, registration
and serving that every Nexus service shares, around the service's own code.

A service (rendered by nexus-template) passes its `ServiceSpec` and its `Identity` to `create_app` in
app/main.py and serves the result with `serve`. Its public interface is `__all__` below, and that of
`nexus_platform.openai` (the OpenAI types) and `nexus_platform.testing` (the contract tests, a pytest
plugin). Everything else lives in `_` modules: internal, it may change in any release; removing a public
name is a breaking change that the changelog announces (tests/platform/test_interface.py pins the lists).
"""

from nexus_platform._app import create_app, create_app_or_exit
from nexus_platform._config.settings import SECRET, ConfigError, PlatformSettings
from nexus_platform._context import NexusContext, nexus_of
from nexus_platform._edge.access import Authorize, Caller
from nexus_platform._edge.asgi import NexusASGI
from nexus_platform._http.errors import ServiceError
from nexus_platform._http.streaming import byte_stream, event_stream
from nexus_platform._identity import Identity
from nexus_platform._observability.correlation import current_request_id
from nexus_platform._offload import cancelled, run_blocking
from nexus_platform._probes.checks import http_dependency
from nexus_platform._probes.metadata import Model
from nexus_platform._probes.models import ModelProvider
from nexus_platform._probes.readiness import CheckResult, ReadinessCheck
from nexus_platform._server.drain import serve
from nexus_platform._spec import ServiceLifespan, ServiceSpec
from nexus_platform._version import __version__

__all__ = [
    "SECRET",
    "Authorize",
    "Caller",
    "CheckResult",
    "ConfigError",
    "Identity",
    "Model",
    "ModelProvider",
    "NexusASGI",
    "NexusContext",
    "PlatformSettings",
    "ReadinessCheck",
    "ServiceError",
    "ServiceLifespan",
    "ServiceSpec",
    "__version__",
    "byte_stream",
    "cancelled",
    "create_app",
    "create_app_or_exit",
    "current_request_id",
    "event_stream",
    "http_dependency",
    "nexus_of",
    "run_blocking",
    "serve",
]
