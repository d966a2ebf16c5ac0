"""The platform's gateway: a Nexus service whose business is routing to the other Nexus services.

A gateway render's app/service.py is

    from nexus_platform.gateway import gateway_spec
    service = gateway_spec()

and `create_app` gives it everything any service has (API keys, limits, drain, logs, metrics,
registration). The gateway finds the instances of every service in etcd (ETCD_URL, followed through its
watch) or in a static list (GATEWAY_SERVICES, `<NAME>_BASE_URL`), reads their /v1/metadata and /v1/models
with its service key, and

- forwards the OpenAI requests (POST /v1/chat/completions, /v1/embeddings, /v1/audio/speech,
  /v1/images/generations, ...) to a ready instance serving the body's `model` (404 model_not_found
  otherwise), the least busy one, failing over once to another instance while nothing reached the client;
- lists every service's models at GET /v1/models, each `owned_by` its service;
- forwards /services/<name>/<path> to <path> of an instance of service <name>;
- shows its routing table at GET /v1/gateway/instances and its metrics on the service's GET /metrics.

docs/gateway.md has the recipes; the modules' docstrings the details.
"""

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager

from litestar.types import ControllerRouterHandler

from nexus_platform._context import NexusContext
from nexus_platform._edge.access import Authorize
from nexus_platform._probes.metadata import Model
from nexus_platform._probes.readiness import CheckResult, ReadinessCheck
from nexus_platform._spec import ServiceLifespan, ServiceSpec
from nexus_platform.gateway._gateway import Gateway
from nexus_platform.gateway._routes import OPENAI_PATHS, ROUTES
from nexus_platform.gateway._settings import GatewaySettings

__all__ = [
    "CHECK_NAME",
    "OPENAI_PATHS",
    "Gateway",
    "GatewaySettings",
    "gateway_of",
    "gateway_spec",
]

CHECK_NAME = "gateway:routes"
# the union of the services' lists changes as instances come and go: served from memory this long
MODELS_CACHE_SECONDS = 0.5


def gateway_of(nexus: NexusContext) -> Gateway:
    """The running gateway (its routing table, metrics), e.g. for a route of the gateway service's own."""
    gateway: Gateway = nexus.state["gateway"]
    return gateway


async def _models(nexus: NexusContext) -> list[Model]:
    return gateway_of(nexus).table.models


async def _routes_check(nexus: NexusContext) -> CheckResult:
    return await gateway_of(nexus).check(nexus)


def gateway_spec(
    *,
    route_handlers: Sequence[ControllerRouterHandler] = (),
    readiness_checks: Mapping[str, ReadinessCheck] | None = None,
    settings: type[GatewaySettings] = GatewaySettings,
    lifespan: ServiceLifespan | None = None,
    authorize: Authorize | None = None,
) -> ServiceSpec:
    """The gateway as a ServiceSpec; the gateway service's own routes, checks, settings (a subclass of
    GatewaySettings), lifespan (run inside the gateway's) and authorize come on top. Change anything else
    with dataclasses.replace."""

    @asynccontextmanager
    async def running(nexus: NexusContext) -> AsyncIterator[None]:
        gateway = Gateway(nexus)
        nexus.state["gateway"] = gateway
        async with AsyncExitStack() as stack:
            await stack.enter_async_context(gateway.running())
            if lifespan is not None:
                await stack.enter_async_context(lifespan(nexus))
            yield

    return ServiceSpec(
        route_handlers=[*ROUTES, *route_handlers],
        readiness_checks={CHECK_NAME: _routes_check, **(readiness_checks or {})},
        settings=settings,
        models=_models,
        models_cache_seconds=MODELS_CACHE_SECONDS,
        lifespan=running,
        authorize=authorize,
    )
