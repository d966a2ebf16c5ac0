"""The capabilities of a wrapper service (answer backend=openai): forwarded to the OpenAI-compatible
backend at BACKEND_URL (Ollama, vLLM, another Nexus service) through the pooled HTTP client.

- Requests are validated here first, then forwarded as sent, with the request's X-Request-ID and, when
  BACKEND_API_KEY is set, `Authorization: Bearer`. Answers pass through unchanged; streams pass through
  event by event, ending with [DONE] (or an error event), under the platform's stream timeouts.
- The backend's errors become OpenAI errors with honest statuses: its 4xx (and 429, 503 with their
  Retry-After) pass through with its message; its other 5xx answer 502 `backend_error`; no answer within
  BACKEND_TIMEOUT_SECONDS answers 504 `backend_timeout`; no connection answers 503 `backend_unavailable`.
- GET /v1/models answers the backend's model list: `list_models` is the model catalog's provider
  (nexus_platform._probes.models: fetched at most every ServiceSpec.models_cache_seconds, the last good list kept while
  the backend is unreachable, the metadata following it); readiness checks the backend's /v1/models.
"""

from collections.abc import AsyncIterator
from typing import Any

import msgspec
from litestar import Response

from nexus_platform._context import NexusContext
from nexus_platform._http.errors import JSON, ErrorBody, ServiceError
from nexus_platform._observability.correlation import HEADER, current_request_id
from nexus_platform._probes.metadata import Model, ModelList
from nexus_platform._probes.readiness import CheckResult

__all__ = [
    "MODELS",
    "complete",
    "embed",
    "generate",
    "list_models",
    "no_backend_check",
    "speak",
    "stream",
]

# the backend decides which models exist: any name is forwarded (its 404 comes back as it is)
MODELS: list[Model] = []
_PASSED_THROUGH = frozenset({400, 401, 403, 404, 409, 413, 415, 422, 429, 503})
_encode = msgspec.json.Encoder().encode


def _url(nexus: NexusContext, path: str) -> str:
    if not nexus.settings.backend_url:
        raise ServiceError(503, "backend_not_configured", "BACKEND_URL is not set: there is no backend")
    return nexus.settings.backend_url.rstrip("/") + path


def _headers(nexus: NexusContext) -> dict[str, str]:
    headers = {HEADER.decode(): current_request_id(), "content-type": JSON}
    if nexus.settings.backend_api_key:
        headers["authorization"] = f"Bearer {nexus.settings.backend_api_key}"
    return headers


def _backend_error(status: int, body: bytes, retry_after: str | None) -> ServiceError:
    """The OpenAI error for a backend's error answer."""
    if status in _PASSED_THROUGH:
        try:
            detail = msgspec.json.decode(body, type=ErrorBody).error
        except msgspec.DecodeError:
            error = ServiceError(status, "backend_error", f"The backend answered HTTP {status}")
        else:
            error = ServiceError(status, detail.code or "backend_error", detail.message, param=detail.param)
        if retry_after is not None and status in (429, 503):
            error.headers = {"retry-after": retry_after}
        return error
    return ServiceError(502, "backend_error", f"The backend failed (HTTP {status})")


def _broken_stream(error: Exception) -> ServiceError:
    """The OpenAI error for a backend stream that failed after it started."""
    import httpx

    if isinstance(error, httpx.TimeoutException):
        return ServiceError(504, "backend_timeout", "The backend's stream went silent")
    return ServiceError(502, "backend_error", f"The backend's stream broke off ({type(error).__name__})")


def _transport_error(error: Exception) -> ServiceError:
    import httpx

    if isinstance(error, httpx.TimeoutException):
        return ServiceError(504, "backend_timeout", "The backend did not answer in time")
    failure = ServiceError(503, "backend_unavailable", f"Cannot reach the backend ({type(error).__name__})")
    failure.headers = {"retry-after": "1"}
    return failure


async def _post(nexus: NexusContext, path: str, request: msgspec.Struct) -> Response[bytes]:
    import httpx

    try:
        answer = await nexus.http.post(_url(nexus, path), content=_encode(request), headers=_headers(nexus))
    except httpx.HTTPError as error:
        raise _transport_error(error) from None
    if not answer.is_success:
        raise _backend_error(answer.status_code, answer.content, answer.headers.get("retry-after"))
    media_type = answer.headers.get("content-type", JSON)
    return Response(answer.content, status_code=200, media_type=media_type)


async def _open_stream(nexus: NexusContext, path: str, request: msgspec.Struct) -> Any:
    """The backend's streaming answer, once its status says it is a success (else the OpenAI error)."""
    import httpx

    outgoing = nexus.http.build_request(
        "POST", _url(nexus, path), content=_encode(request), headers=_headers(nexus)
    )
    try:
        answer = await nexus.http.send(outgoing, stream=True)
    except httpx.HTTPError as error:
        raise _transport_error(error) from None
    if not answer.is_success:
        body = await answer.aread()
        await answer.aclose()
        raise _backend_error(answer.status_code, body, answer.headers.get("retry-after"))
    return answer


async def _events(answer: Any) -> AsyncIterator[bytes]:
    """The data of each server-sent event of the backend, up to its [DONE]. An event is complete at its
    blank line (an unfinished one is dropped, as the SSE standard says); a stream that ends without
    [DONE] broke off."""
    import httpx

    data: list[str] = []
    try:
        async for line in answer.aiter_lines():
            if line.startswith("data:"):
                data.append(line[5:].removeprefix(" "))
            elif line == "" and data:  # the end of an event
                event, data = "\n".join(data).encode(), []
                if event == b"[DONE]":
                    return
                if event.startswith(b'{"error"'):
                    error = msgspec.json.decode(event, type=ErrorBody).error
                    raise ServiceError(
                        502, error.code or "backend_error", f"The backend failed: {error.message}"
                    )
                yield event
    except httpx.HTTPError as error:
        raise _broken_stream(error) from None
    finally:
        await answer.aclose()  # the pooled client's connection, also when the client went away
    raise ServiceError(502, "backend_error", "The backend's stream broke off before [DONE]")


async def _bytes(answer: Any) -> AsyncIterator[bytes]:
    import httpx

    try:
        async for chunk in answer.aiter_raw():
            yield chunk
    except httpx.HTTPError as error:
        raise _broken_stream(error) from None
    finally:
        await answer.aclose()


async def complete(request: msgspec.Struct, nexus: NexusContext) -> Response[bytes]:
    return await _post(nexus, "/v1/chat/completions", request)


async def stream(request: msgspec.Struct, nexus: NexusContext) -> AsyncIterator[bytes]:
    return _events(await _open_stream(nexus, "/v1/chat/completions", request))


async def embed(request: msgspec.Struct, nexus: NexusContext) -> Response[bytes]:
    return await _post(nexus, "/v1/embeddings", request)


async def speak(request: msgspec.Struct, nexus: NexusContext) -> AsyncIterator[bytes]:
    return _bytes(await _open_stream(nexus, "/v1/audio/speech", request))


async def generate(request: msgspec.Struct, nexus: NexusContext) -> Response[bytes]:
    return await _post(nexus, "/v1/images/generations", request)


async def no_backend_check(nexus: NexusContext) -> CheckResult:
    """Readiness of a wrapper without BACKEND_URL: it cannot serve anything."""
    return CheckResult("fail", output="BACKEND_URL is not set")


async def list_models(nexus: NexusContext) -> list[Model]:
    """The backend's GET /v1/models (a ServiceError says why there is none)."""
    import httpx

    try:
        answer = await nexus.http.get(_url(nexus, "/v1/models"), headers=_headers(nexus))
    except httpx.HTTPError as error:
        raise _transport_error(error) from None
    if not answer.is_success:
        raise _backend_error(answer.status_code, answer.content, None)
    try:
        return msgspec.json.decode(answer.content, type=ModelList).data
    except msgspec.DecodeError:
        raise ServiceError(502, "backend_error", "The backend's model list is not OpenAI's") from None
