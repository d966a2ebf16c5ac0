# Managed by nexus-template: `copier update` replaces this file. Your code belongs in app/service.py.
"""The platform endpoints: /health, /readyz, /v1/metadata and /v1/models.

Their answers are pre-encoded bytes (readiness: cached). `Probes` is the one implementation; the outer
ASGI layer (app.nexus.asgi) serves GET requests for them directly, without the framework's routing,
and the Litestar handlers below serve the same answers for everything else and document them in OpenAPI.
"""

from collections.abc import Awaitable, Callable
from typing import Literal, NamedTuple

import msgspec
from litestar import Response, get
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Example

from app.nexus.metadata import Metadata, ModelList
from app.nexus.models import ModelCatalog
from app.nexus.readiness import HEALTH_JSON, Readiness, ReadinessReport

JSON = "application/json"
NO_STORE = {"cache-control": "no-store"}


class Health(msgspec.Struct, frozen=True):
    status: Literal["pass"]


class ProbeAnswer(NamedTuple):
    status_code: int
    body: bytes
    media_type: str


class Probes:
    def __init__(self, readiness: Readiness, catalog: ModelCatalog) -> None:
        self.readiness = readiness
        self.catalog = catalog
        self._health = ProbeAnswer(200, msgspec.json.encode(Health("pass")), HEALTH_JSON)
        self._metadata: ProbeAnswer | None = None

    def publish(self, metadata: Metadata) -> None:
        """Set the metadata document (at start-up, once every route is known)."""
        self._metadata = ProbeAnswer(200, msgspec.json.encode(metadata), JSON)

    async def health(self) -> ProbeAnswer:
        return self._health

    async def readyz(self) -> ProbeAnswer:
        answer = await self.readiness.answer()
        return ProbeAnswer(answer.status_code, answer.body, HEALTH_JSON)

    async def metadata(self) -> ProbeAnswer:
        if self._metadata is None:
            raise RuntimeError("metadata is published at start-up (lifespan)")
        return self._metadata

    async def models(self) -> ProbeAnswer:
        status_code, body = await self.catalog.answer()
        return ProbeAnswer(status_code, body, JSON)

    def routes(self) -> dict[str, Callable[[], Awaitable[ProbeAnswer]]]:
        """Path -> answer, for the fast path of GET requests."""
        return {
            "/health": self.health,
            "/readyz": self.readyz,
            "/v1/metadata": self.metadata,
            "/v1/models": self.models,
        }


def _response(answer: ProbeAnswer) -> Response[bytes]:
    return Response(
        answer.body, status_code=answer.status_code, media_type=answer.media_type, headers=NO_STORE
    )


def probe_handlers(probes: Probes) -> list[HTTPRouteHandler]:
    @get(
        "/health",
        summary="Liveness: 200 while the process is alive; never checks backends",
        tags=["platform"],
        media_type=HEALTH_JSON,
    )
    async def health() -> Response[Health]:
        return _response(await probes.health())  # type: ignore[return-value]

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
        return _response(await probes.readyz())  # type: ignore[return-value]

    @get("/v1/metadata", summary="Service discovery document for the gateway", tags=["platform"])
    async def metadata() -> Response[Metadata]:
        return _response(await probes.metadata())  # type: ignore[return-value]

    @get("/v1/models", summary="OpenAI list of the models this service serves", tags=["platform"])
    async def models() -> Response[ModelList]:
        return _response(await probes.models())  # type: ignore[return-value]

    return [health, readyz, metadata, models]
