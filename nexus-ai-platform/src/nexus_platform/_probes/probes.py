"""The platform endpoints: /health, /readyz, /v1/metadata, /v1/models and /metrics (unless METRICS_ENABLED=false).

Their answers are pre-encoded bytes (readiness: cached). `Probes` is the one implementation; the outer
ASGI layer (nexus_platform._edge.asgi) serves GET requests for them directly, without the framework's routing,
and the Litestar handlers below serve the same answers for everything else and document them in OpenAPI.
"""

from collections.abc import Awaitable, Callable
from typing import Any, Literal, NamedTuple

import msgspec
from litestar import Request, Response, get
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Example
from litestar.types import Scope

from nexus_platform._http.encoded import Document, encoded_response
from nexus_platform._observability.metrics import TEXT, Metrics
from nexus_platform._probes.metadata import Metadata, ModelList
from nexus_platform._probes.models import ModelCatalog
from nexus_platform._probes.readiness import HEALTH_JSON, Readiness, ReadinessReport

JSON = "application/json"
NO_STORE = {"cache-control": "no-store"}


class Health(msgspec.Struct, frozen=True):
    status: Literal["pass"]


class ProbeAnswer(NamedTuple):
    status_code: int
    body: bytes
    media_type: str


FastRoute = Callable[[Scope], Awaitable[ProbeAnswer]]


class Probes:
    def __init__(self, readiness: Readiness, catalog: ModelCatalog, metrics: Metrics | None = None) -> None:
        self.readiness = readiness
        self.catalog = catalog
        self.metrics_source = metrics
        self._health = ProbeAnswer(200, msgspec.json.encode(Health("pass")), HEALTH_JSON)
        self._metadata: ProbeAnswer | None = None

    def publish(self, metadata: Metadata) -> None:
        """Set the metadata document (at start-up, once every route is known)."""
        self._metadata = ProbeAnswer(200, msgspec.json.encode(metadata), JSON)

    async def health(self, _scope: Scope | None = None) -> ProbeAnswer:
        return self._health

    async def readyz(self, _scope: Scope | None = None) -> ProbeAnswer:
        answer = await self.readiness.answer()
        return ProbeAnswer(answer.status_code, answer.body, HEALTH_JSON)

    async def metadata(self, _scope: Scope | None = None) -> ProbeAnswer:
        if self._metadata is None:
            raise RuntimeError("metadata is published at start-up (lifespan)")
        return self._metadata

    async def models(self, _scope: Scope | None = None) -> ProbeAnswer:
        status_code, body = await self.catalog.answer()
        return ProbeAnswer(status_code, body, JSON)

    async def metrics(self, scope: Scope | None = None) -> ProbeAnswer:
        if self.metrics_source is None:
            raise RuntimeError("metrics are off (METRICS_ENABLED=false)")
        body, content_type = self.metrics_source.answer(scope["headers"] if scope is not None else ())
        return ProbeAnswer(200, body, content_type)

    def routes(self) -> dict[str, FastRoute]:
        """Path -> answer, for the fast path of GET requests (called with the request's scope)."""
        routes: dict[str, FastRoute] = {
            "/health": self.health,
            "/readyz": self.readyz,
            "/v1/metadata": self.metadata,
            "/v1/models": self.models,
        }
        if self.metrics_source is not None:
            routes["/metrics"] = self.metrics
        return routes


def _response(answer: ProbeAnswer, document: type[Document]) -> Response[Document]:
    return encoded_response(
        answer.body, document, status_code=answer.status_code, media_type=answer.media_type, headers=NO_STORE
    )


def probe_handlers(probes: Probes) -> list[HTTPRouteHandler]:
    @get(
        "/health",
        summary="Liveness: 200 while the process is alive; never checks backends",
        tags=["platform"],
        media_type=HEALTH_JSON,
    )
    async def health() -> Response[Health]:
        return _response(await probes.health(), Health)

    @get(
        "/readyz",
        summary="Readiness: 200 when every check passes or warns, 503 when one fails",
        tags=["platform"],
        media_type=HEALTH_JSON,
        responses={
            503: ResponseSpec(
                data_container=ReadinessReport,
                description="A readiness check failed, or the service is draining",
                media_type=HEALTH_JSON,
                examples=[Example(value={"status": "fail", "checks": {}})],
            )
        },
    )
    async def readyz() -> Response[ReadinessReport]:
        return _response(await probes.readyz(), ReadinessReport)

    @get("/v1/metadata", summary="Service discovery document for the gateway", tags=["platform"])
    async def metadata() -> Response[Metadata]:
        return _response(await probes.metadata(), Metadata)

    @get("/v1/models", summary="OpenAI list of the models this service serves", tags=["platform"])
    async def models() -> Response[ModelList]:
        return _response(await probes.models(), ModelList)

    if probes.metrics_source is None:
        return [health, readyz, metadata, models]

    @get(
        "/metrics",
        summary="Prometheus metrics (text format; OpenMetrics when Accept asks for it)",
        tags=["platform"],
        media_type=TEXT,
    )
    async def metrics(request: Request[Any, Any, Any]) -> Response[str]:
        return _response(await probes.metrics(request.scope), str)

    return [health, readyz, metadata, models, metrics]
