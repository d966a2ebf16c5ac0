"""GET /v1/models: the service's model list, static or from an async provider.

A static list is encoded once. A provider (`async def models(nexus) -> list[Model]`, e.g. asking an
Ollama or vLLM backend) runs at most once per cache period, concurrent callers share one run, and its
answer is served from memory like readiness. When it fails or times out, the last good list is served
and the provider is asked again a second later; with no good list yet the answer is the provider's
ServiceError (e.g. a wrapper's 503 backend_unavailable), or else an OpenAI 503 models_unavailable.
"""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

import msgspec

from nexus_platform._http.errors import ServiceError, error_body
from nexus_platform._probes.metadata import Model, ModelList

if TYPE_CHECKING:
    from nexus_platform._context import NexusContext

logger = logging.getLogger("nexus.models")

ModelProvider = Callable[["NexusContext"], Awaitable[Sequence[Model]]]
ModelsAnswer = tuple[int, bytes]
RETRY_SECONDS = 1.0
_UNAVAILABLE = error_body(
    503, "The model list is not available yet; retry shortly", code="models_unavailable"
)


class ModelCatalog:
    def __init__(
        self,
        models: Sequence[Model] | ModelProvider,
        context: "NexusContext",
        *,
        cache_seconds: float,
        timeout: float,
    ) -> None:
        self._provider = models if callable(models) else None
        self.models: list[Model] = [] if callable(models) else list(models)
        # the ids of `models`, for bounded metric labels (nexus_platform._observability.generation)
        self.ids = frozenset(model.id for model in self.models)
        self._answer: ModelsAnswer | None = None if callable(models) else _encode(self.models)
        self._context = context
        self._cache_seconds = cache_seconds
        self._timeout = timeout
        self._expires = 0.0
        self._running: asyncio.Future[ModelsAnswer] | None = None
        # called with the new list whenever the provider's answer changes (the metadata follows it)
        self.on_change: Callable[[list[Model]], None] | None = None

    @property
    def dynamic(self) -> bool:
        return self._provider is not None

    async def answer(self) -> ModelsAnswer:
        if self._provider is None or (self._answer is not None and time.monotonic() < self._expires):
            return self._answer if self._answer is not None else (503, _UNAVAILABLE)
        if self._running is None:
            self._running = asyncio.ensure_future(self._refresh(self._provider))
            self._running.add_done_callback(self._finished)
        return await asyncio.shield(self._running)

    def _finished(self, _: "asyncio.Future[ModelsAnswer]") -> None:
        self._running = None

    async def _refresh(self, provider: ModelProvider) -> ModelsAnswer:
        try:
            async with asyncio.timeout(self._timeout):
                models = list(await provider(self._context))
            if not all(isinstance(model, Model) for model in models):
                raise TypeError("the model provider must return Model objects")
        except Exception as error:  # noqa: BLE001 - a failing provider is an answer, never a 500
            why = error.detail if isinstance(error, ServiceError) else type(error).__name__
            logger.warning("model list provider failed (%s); serving the last good list", why)
            self._expires = time.monotonic() + min(RETRY_SECONDS, self._cache_seconds)
            return self._answer if self._answer is not None else _unavailable(error)
        self._answer = _encode(models)
        self._expires = time.monotonic() + self._cache_seconds
        if models != self.models:
            self.models = models
            self.ids = frozenset(model.id for model in models)
            if self.on_change is not None:
                self.on_change(models)
        return self._answer


def _unavailable(error: Exception) -> ModelsAnswer:
    """The answer while there is no good list yet: the provider's own OpenAI error, or a 503."""
    if isinstance(error, ServiceError):
        return error.status_code, error_body(error.status_code, error.detail, code=error.code)
    return 503, _UNAVAILABLE


def _encode(models: Sequence[Model]) -> ModelsAnswer:
    return 200, msgspec.json.encode(ModelList(data=list(models)))
