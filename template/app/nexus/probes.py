# Managed by nexus-template: `copier update` replaces this file. Your code belongs in app/service.py.
"""The platform endpoints: /health, /readyz, /v1/metadata and /v1/models.

Their answers are pre-encoded bytes (readiness: cached). `Probes` is the one implementation; the outer
ASGI layer (app.nexus.asgi) serves GET requests for them directly, without the framework's routing,
and the Litestar handlers below serve the same answers for everything else and document them in OpenAPI.
"""

from collections.abc import Awaitable, Callable, Sequence
from typing import Literal, NamedTuple

import msgspec
from litestar import Response, get
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Example

from app.nexus.metadata import Metadata, Model, ModelList
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
    def __init__(
        self,
        readiness: Readiness,
        models: Sequence[Model],
        models_source: Callable[[], Awaitable[ProbeAnswer]] | None = None,
    ) -> None:
        """`models_source`: where GET /v1/models comes from instead of `models` (a wrapped backend)."""
        self.readiness = readiness
        self._health = ProbeAnswer(200, msgspec.json.encode(Health("pass")), HEALTH_JSON)
        self._models = ProbeAnswer(200, msgspec.json.encode(ModelList(data=list(models))), JSON)
        self._models_source = models_source
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
        if self._models_source is not None:
            return await self._models_source()
        return self._models

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
