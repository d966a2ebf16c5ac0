# Managed by nexus-template: `copier update` replaces this file. Your code belongs in app/service.py.
"""ServiceSpec: the whole interface between the platform and the service code in app/service.py."""

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field

import msgspec
from litestar.types import ControllerRouterHandler, Middleware

from app.nexus.context import NexusContext
from app.nexus.metadata import Model
from app.nexus.readiness import ReadinessCheck

ServiceLifespan = Callable[[NexusContext], AbstractAsyncContextManager[None]]


@dataclass(frozen=True)
class ServiceSpec:
    """What the service adds to the platform.

    route_handlers    Litestar handlers, controllers or routers (your endpoints).
    readiness_checks  name ("component:measurement") -> async check(context) -> CheckResult.
    settings          a msgspec.Struct read from the environment like the platform's settings
                      (field `model_dir` <- MODEL_DIR); document each variable in .env.example.
    models            the OpenAI model objects listed by GET /v1/models and in the metadata.
    lifespan          async context manager factory: set up before serving, torn down after.
    middleware        Litestar middleware around every route of the app (not the platform endpoints),
                      e.g. OpenTelemetry's: it sees the W3C trace the logs show (docs/operations.md).
    """

    route_handlers: Sequence[ControllerRouterHandler] = ()
    readiness_checks: Mapping[str, ReadinessCheck] = field(default_factory=dict)
    settings: type[msgspec.Struct] | None = None
    models: Sequence[Model] = ()
    lifespan: ServiceLifespan | None = None
    middleware: Sequence[Middleware] = ()
