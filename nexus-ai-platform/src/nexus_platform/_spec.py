"""ServiceSpec: the whole interface between the platform and the service code in app/service.py."""

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field

import msgspec
from litestar.plugins import PluginProtocol
from litestar.types import ControllerRouterHandler, Middleware, OnAppInitHandler

from nexus_platform._context import NexusContext
from nexus_platform._edge.access import Authorize
from nexus_platform._probes.metadata import Model
from nexus_platform._probes.models import ModelProvider
from nexus_platform._probes.readiness import ReadinessCheck

ServiceLifespan = Callable[[NexusContext], AbstractAsyncContextManager[None]]


@dataclass(frozen=True)
class ServiceSpec:
    """What the service adds to the platform.

    route_handlers    Litestar handlers, controllers or routers (your endpoints).
    readiness_checks  name ("component:measurement") -> async check(context) -> CheckResult.
    settings          a msgspec.Struct read from the environment like the platform's settings
                      (field `model_dir` <- MODEL_DIR); document each variable in .env.example.
    models            the OpenAI model objects of GET /v1/models and the metadata: a list, or an async
                      provider `async def models(nexus) -> list[Model]` (e.g. asking the backend),
                      cached for `models_cache_seconds` and served from memory.
    lifespan          async context manager factory: set up before serving, torn down after.
    plugins           Litestar plugins (stores, channels, instrumentation, ...), passed to Litestar.
    on_app_init       Litestar on_app_init hooks: each gets the AppConfig and may add to it (listeners,
                      stores, middleware, ...). The platform's routes and its outer layer stay as they are.
    middleware        Litestar middleware around every route of the app (not the platform endpoints),
                      e.g. OpenTelemetry's: it sees the W3C trace the logs show (docs/operations.md).
    authorize         `def authorize(caller: Caller) -> bool | None`, asked for every request but the
                      liveness and readiness probes (the platform's routes included), before its body is
                      read: True allows it (even without a key), False refuses it (403), None leaves it to
                      API_KEYS. Keep it fast: it runs on the event loop.
    """

    route_handlers: Sequence[ControllerRouterHandler] = ()
    readiness_checks: Mapping[str, ReadinessCheck] = field(default_factory=dict)
    settings: type[msgspec.Struct] | None = None
    models: Sequence[Model] | ModelProvider = ()
    models_cache_seconds: float = 30.0
    lifespan: ServiceLifespan | None = None
    plugins: Sequence[PluginProtocol] = ()
    on_app_init: Sequence[OnAppInitHandler] = ()
    middleware: Sequence[Middleware] = ()
    authorize: Authorize | None = None
