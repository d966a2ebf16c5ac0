"""The OpenAI routes of the capabilities a service offers, around the implementations it provides.

Each route validates the request with the OpenAI types (every invalid field in one 400; a field the
platform does not know is one of them unless STRICT_OPENAI_FIELDS=false, the default of a wrapper, which
then forwards the body as received; with IMAGE_URL_CHECK, every image URL of a chat request:
openai/_image_urls.py), records the request's model, tokens and stream timing for the access line and the
LLM metrics (nexus_platform._observability.generation), answers 404
`model_not_found` for a model the implementation does not list, and hands the request to the
implementation: a module with the functions named below (app/capabilities/ in a rendered service, or
nexus_platform.openai._proxy for a service that wraps an OpenAI-compatible backend).
"""

import inspect
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from typing import Any, TypeVar, get_args

from litestar import Request, Response, post
from litestar.handlers import HTTPRouteHandler
from litestar.params import JSONBody

from nexus_platform._context import NexusContext, nexus_of
from nexus_platform._http.errors import ServiceError
from nexus_platform._http.exchange import current_exchange
from nexus_platform._http.streaming import byte_stream, event_stream
from nexus_platform._observability.generation import Generation, LlmMetrics
from nexus_platform._probes.metadata import Model
from nexus_platform._probes.models import ModelProvider
from nexus_platform._rules import OPENAI_CAPABILITIES
from nexus_platform.openai._audio import AUDIO_MEDIA_TYPES, SpeechRequest
from nexus_platform.openai._chat import ChatCompletion, ChatCompletionRequest
from nexus_platform.openai._embeddings import EmbeddingList, EmbeddingRequest
from nexus_platform.openai._image_urls import check_image_urls
from nexus_platform.openai._images import ImageGenerationRequest, ImagesResponse
from nexus_platform.openai._unknown_fields import accepting_unknown_fields
from nexus_platform.openai._usage import read_usage

HandlerT = TypeVar("HandlerT", bound=Callable[..., Coroutine[Any, Any, Any]])

__all__ = ["PATHS", "ROUTES", "capability_handlers", "capability_models", "require_model"]

# capability -> the path of its route
PATHS = {name: capability.path for name, capability in OPENAI_CAPABILITIES.items()}


def require_model(model: str, models: Sequence[Model]) -> None:
    """404 model_not_found unless `model` is listed (an empty list accepts any model)."""
    if models and model not in {each.id for each in models}:
        raise ServiceError(
            404,
            "model_not_found",
            f"The model `{model[:256]}` does not exist (GET /v1/models lists the models of this service)",
            param="model",
        )


def start_generation(model: str, metrics: LlmMetrics | None) -> Generation:
    """The generation of the request being handled, recorded with its exchange (when it is counted)."""
    exchange = current_exchange()
    generation = Generation(model, exchange.started if exchange is not None else time.monotonic(), metrics)
    if exchange is not None:
        exchange.generation = generation
    return generation


def _body_type(strict: bool) -> Callable[[HandlerT], HandlerT]:
    """Decorates a handler whose body is an OpenAI type: with STRICT_OPENAI_FIELDS=false (`strict` false)
    it takes that type's variant that accepts unknown fields instead (openai/_unknown_fields.py; a
    subclass, so the handler's code and annotations hold)."""

    def decorate(handler: HandlerT) -> HandlerT:
        if not strict:
            (struct_type,) = [
                arg for arg in get_args(handler.__annotations__["data"]) if isinstance(arg, type)
            ]
            lenient = accepting_unknown_fields(struct_type)
            body = JSONBody[lenient]  # type: ignore[valid-type]  # a type made at run time
            handler.__annotations__["data"] = body  # Litestar reads the body's type from the annotations
        return handler

    return decorate


async def _forwarded(implementation: Any, request: Request[Any, Any, Any]) -> dict[str, bytes]:
    """The body as received, for an implementation that forwards it (a wrapper's, FORWARDS_BODY): the
    fields the platform does not know reach the backend untouched."""
    return {"body": await request.body()} if getattr(implementation, "FORWARDS_BODY", False) else {}


async def _counted_events(events: AsyncIterator[Any], generation: Generation) -> AsyncIterator[Any]:
    """The stream's events as they come, each timed, and the usage of the one that carries it (the last,
    with stream_options.include_usage)."""
    try:
        async for event in events:
            generation.event()
            if isinstance(event, bytes):
                if b'"usage"' in event:
                    generation.count(read_usage(event))
            elif getattr(event, "usage", None) is not None:
                generation.count(event.usage)
            yield event
    finally:  # at once when the client goes: the implementation's own cleanup (a backend call) runs now
        close = getattr(events, "aclose", None)
        if close is not None:
            await close()


def chat_completions(implementation: Any, strict: bool) -> HTTPRouteHandler:
    @post(
        PATHS["chat.completions"],
        status_code=200,
        summary="Create a chat completion (OpenAI); with stream: true, server-sent events",
        tags=["openai"],
    )
    @_body_type(strict)
    async def create_chat_completion(
        data: JSONBody[ChatCompletionRequest], request: Request[Any, Any, Any]
    ) -> ChatCompletion:
        nexus = nexus_of(request)
        check_image_urls(data, nexus.settings)
        require_model(data.model, implementation.MODELS)
        generation = start_generation(data.model, nexus.llm_metrics)
        forwarded = await _forwarded(implementation, request)
        if data.stream:
            events = implementation.stream(data, nexus, **forwarded)
            if inspect.isawaitable(events):  # checked before the answer starts, e.g. a backend's status
                events = await events
            return event_stream(_counted_events(events, generation))  # type: ignore[return-value]  # the annotation documents stream: false
        completion: ChatCompletion = await implementation.complete(data, nexus, **forwarded)
        generation.count(getattr(completion, "usage", None))
        return completion

    return create_chat_completion


def embeddings(implementation: Any, strict: bool) -> HTTPRouteHandler:
    @post(PATHS["embeddings"], status_code=200, summary="Create embeddings (OpenAI)", tags=["openai"])
    @_body_type(strict)
    async def create_embeddings(
        data: JSONBody[EmbeddingRequest], request: Request[Any, Any, Any]
    ) -> EmbeddingList:
        nexus = nexus_of(request)
        require_model(data.model, implementation.MODELS)
        generation = start_generation(data.model, nexus.llm_metrics)
        embedded: EmbeddingList = await implementation.embed(
            data, nexus, **await _forwarded(implementation, request)
        )
        generation.count(getattr(embedded, "usage", None))
        return embedded

    return create_embeddings


def audio_speech(implementation: Any, strict: bool) -> HTTPRouteHandler:
    @post(
        PATHS["audio.speech"],
        status_code=200,
        summary="Generate audio from text (OpenAI); the audio is streamed as it is made",
        tags=["openai"],
        media_type="audio/mpeg",
    )
    @_body_type(strict)
    async def create_speech(
        data: JSONBody[SpeechRequest], request: Request[Any, Any, Any]
    ) -> Response[bytes]:
        nexus = nexus_of(request)
        require_model(data.model, implementation.MODELS)
        if data.stream_format == "sse":
            raise ServiceError(
                400, "unsupported_value", "stream_format `sse` is not supported here", param="stream_format"
            )
        start_generation(data.model, nexus.llm_metrics)
        audio = await implementation.speak(data, nexus, **await _forwarded(implementation, request))
        return byte_stream(audio, AUDIO_MEDIA_TYPES[data.response_format])

    return create_speech


def images_generations(implementation: Any, strict: bool) -> HTTPRouteHandler:
    @post(PATHS["images.generations"], status_code=200, summary="Create images (OpenAI)", tags=["openai"])
    @_body_type(strict)
    async def create_images(
        data: JSONBody[ImageGenerationRequest], request: Request[Any, Any, Any]
    ) -> ImagesResponse:
        nexus = nexus_of(request)
        if data.model is not None:
            require_model(data.model, implementation.MODELS)
        if data.stream:
            raise ServiceError(
                400, "unsupported_value", "streamed images are not supported here", param="stream"
            )
        start_generation(data.model or "", nexus.llm_metrics)
        images: ImagesResponse = await implementation.generate(
            data, nexus, **await _forwarded(implementation, request)
        )
        return images

    return create_images


# capability -> the factory of its route
ROUTES = {
    "chat.completions": chat_completions,
    "embeddings": embeddings,
    "audio.speech": audio_speech,
    "images.generations": images_generations,
}


def capability_handlers(implementations: dict[str, Any], *, strict: bool = True) -> list[HTTPRouteHandler]:
    """The routes of the capabilities in `implementations` (capability -> implementing module); `strict`:
    STRICT_OPENAI_FIELDS."""
    return [
        ROUTES[capability](implementation, strict) for capability, implementation in implementations.items()
    ]


def capability_models(
    declared: Sequence[Model] | ModelProvider, implementations: dict[str, Any]
) -> Sequence[Model] | ModelProvider:
    """The models of GET /v1/models and the metadata, each id once: the service's declared models (a list,
    or its async provider), then those of its capability implementations (their `MODELS`, and the list
    their `list_models` provider fetches: a wrapper's backend). A list, unless a provider takes part."""
    sources: list[Sequence[Model] | ModelProvider] = [declared]
    for implementation in implementations.values():
        sources.append(getattr(implementation, "MODELS", ()))
        provider = getattr(implementation, "list_models", None)
        if provider is not None and provider not in sources:
            sources.append(provider)
    if not any(callable(source) for source in sources):
        return _each_once([model for source in sources if not callable(source) for model in source])

    async def models(nexus: NexusContext) -> list[Model]:
        listed: list[Model] = []
        for source in sources:
            listed.extend(await source(nexus) if callable(source) else source)
        return _each_once(listed)

    return models


def _each_once(models: list[Model]) -> list[Model]:
    unique: dict[str, Model] = {}
    for model in models:
        unique.setdefault(model.id, model)
    return list(unique.values())
