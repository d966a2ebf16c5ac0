"""The capabilities of a wrapper service (answer backend=openai): forwarded to the OpenAI-compatible
backend at BACKEND_URL (Ollama, vLLM, another Nexus service) through the pooled HTTP client.

- Requests are validated here first, then their bodies forwarded as received (FORWARDS_BODY: with
  STRICT_OPENAI_FIELDS=false, the default here, fields the platform does not know reach the backend
  untouched), with the request's X-Request-ID and, when BACKEND_API_KEY is set, `Authorization: Bearer`. Answers pass through unchanged; streams pass through
  event by event, ending with [DONE] (or an error event), under the platform's stream timeouts.
- Backend answers are bounded: a non-streamed one is read as it arrives and held once, up to
  BACKEND_MAX_RESPONSE_BYTES (a larger one, or one whose Content-Length says so, answers 502
  `backend_response_too_large`); a stream is split into lines here, each (and each event) up to
  BACKEND_MAX_EVENT_BYTES, else the stream ends with the error event `backend_event_too_large`
  (aiohttp's own line reader would refuse a line over its buffer with a bare ValueError).
- The backend's errors become OpenAI errors with honest statuses: its 4xx (and 429, 503 with their
  Retry-After) pass through with its message, type, code and param; its other 5xx answer 502 `backend_error`; no answer within
  BACKEND_TIMEOUT_SECONDS answers 504 `backend_timeout`; no connection answers 503 `backend_unavailable`.
  A message that reaches the client (an error answer's, a stream's error event) passes the log lines'
  redaction first: a backend that echoes the key (`Incorrect API key provided: Bearer sk-…`) does not hand
  it to the caller. Every failed backend call is logged once at WARNING under the request and trace ids:
  the backend's status, error type, code and message (redacted, bounded), or why there was no answer.
- The answer's `usage` (a non-streamed answer's, or a stream's last event with
  stream_options.include_usage) feeds the LLM metrics and the access line (the routes read the stream's).
- GET /v1/models answers the backend's model list: `list_models` is the model catalog's provider
  (nexus_platform._probes.models: fetched at most every ServiceSpec.models_cache_seconds, the last good list kept while
  the backend is unreachable, the metadata following it); readiness checks the backend's /v1/models.
"""

import gc
import logging
import mmap
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import msgspec
from litestar.response import Stream

from nexus_platform._context import NexusContext
from nexus_platform._http.errors import JSON, ServiceError
from nexus_platform._http.exchange import current_exchange
from nexus_platform._observability.correlation import HEADER, current_request_id
from nexus_platform._observability.tracing import outgoing_traceparent, trace_var
from nexus_platform._probes.metadata import Model, ModelList
from nexus_platform._probes.readiness import CheckResult
from nexus_platform.openai._usage import read_usage

if TYPE_CHECKING:
    import aiohttp

__all__ = [
    "FORWARDS_BODY",
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
# the routes hand each function the request body as received (`body=`), forwarded instead of re-encoded
FORWARDS_BODY = True
_PASSED_THROUGH = frozenset({400, 401, 403, 404, 409, 413, 415, 422, 429, 503})
# an error answer's message is in its first bytes; the rest is not read
_ERROR_BYTES = 64 << 10
# what a buffered answer is sent in
_SENT_BYTES = 64 << 10
# of a backend's error, in the log line
_LOGGED = 2000
_encode = msgspec.json.Encoder().encode
logger = logging.getLogger("nexus.backend")


class _BackendError(msgspec.Struct):
    """A backend's OpenAI-style error, read leniently: vLLM's `code` is the HTTP status (an integer)."""

    message: str = ""
    type: str | None = None
    param: str | int | None = None
    code: str | int | None = None

    def text(self, field: str | int | None) -> str | None:
        return None if field is None else str(field)


class _BackendErrorBody(msgspec.Struct):
    error: _BackendError


def _decoded_error(body: bytes) -> _BackendError | None:
    try:
        return msgspec.json.decode(body, type=_BackendErrorBody).error
    except msgspec.DecodeError:
        return None


def _url(nexus: NexusContext, path: str) -> str:
    if not nexus.settings.backend_url:
        raise ServiceError(503, "backend_not_configured", "BACKEND_URL is not set: there is no backend")
    return nexus.settings.backend_url.rstrip("/") + path


def _headers(nexus: NexusContext) -> dict[str, str]:
    # identity: a compressed answer would be inflated a whole piece at a time, past the bounds on its size
    headers = {"content-type": JSON, "accept-encoding": "identity"}
    request_id = current_request_id()
    if request_id:  # a background call (the model list's refresh) has none, and sends none
        headers[HEADER.decode()] = request_id
    trace = trace_var.get()
    if trace is not None:
        headers["traceparent"] = outgoing_traceparent(trace)
    if nexus.settings.backend_api_key:
        headers["authorization"] = f"Bearer {nexus.settings.backend_api_key}"
    return headers


def _log_failure(why: str, **fields: object) -> None:
    """The one WARNING of a failed backend call (the formatter adds the request and trace ids)."""
    logger.warning(
        "backend call failed: %s", why, extra={f"backend_{name}": value for name, value in fields.items()}
    )


def _backend_error(nexus: NexusContext, status: int, body: bytes, retry_after: str | None) -> ServiceError:
    """The OpenAI error for a backend's error answer (its message redacted); the backend's words logged."""
    detail = _decoded_error(body)
    text = detail.message if detail is not None else body.decode(errors="replace")
    code = detail.text(detail.code) if detail is not None else None
    _log_failure(
        f"HTTP {status}: {nexus.redact(text)[:_LOGGED]}",
        status=status,
        error_type=detail.type if detail is not None else None,
        error_code=code,
    )
    if status not in _PASSED_THROUGH:
        return ServiceError(502, "backend_error", f"The backend failed (HTTP {status})")
    if detail is None:
        error = ServiceError(status, "backend_error", f"The backend answered HTTP {status}")
    else:
        param = detail.text(detail.param)
        error = ServiceError(
            status,
            code or "backend_error",
            nexus.redact(detail.message),
            param=nexus.redact(param) if param is not None else None,
            type_=detail.type,
        )
    if retry_after is not None and status in (429, 503):
        error.headers = {"retry-after": retry_after}
    return error


def _broken_stream(error: Exception) -> ServiceError:
    """The OpenAI error for a backend answer that failed after it started: silent past
    BACKEND_TIMEOUT_SECONDS (aiohttp's read timeout, a TimeoutError), or cut (ClientPayloadError: fewer
    bytes than its Content-Length or a broken chunk; ClientConnectionError: the connection closed)."""
    _log_failure(
        f"the answer broke off ({type(error).__name__}: {error})"[:_LOGGED], error_type=type(error).__name__
    )
    if isinstance(error, TimeoutError):
        return ServiceError(504, "backend_timeout", "The backend's stream went silent")
    return ServiceError(502, "backend_error", f"The backend's stream broke off ({type(error).__name__})")


def _transport_error(error: Exception) -> ServiceError:
    """The OpenAI error for a call that got no answer: none within BACKEND_TIMEOUT_SECONDS (connecting,
    waiting for a pooled connection, or for the status line: aiohttp's timeouts are TimeoutErrors), or no
    connection (ClientConnectorError: refused, unresolvable; ServerDisconnectedError: closed twice)."""
    _log_failure(f"no answer ({type(error).__name__}: {error})"[:_LOGGED], error_type=type(error).__name__)
    if isinstance(error, TimeoutError):
        return ServiceError(504, "backend_timeout", "The backend did not answer in time")
    failure = ServiceError(503, "backend_unavailable", f"Cannot reach the backend ({type(error).__name__})")
    failure.headers = {"retry-after": "1"}
    return failure


def _too_large(limit: int) -> ServiceError:
    return ServiceError(
        502,
        "backend_response_too_large",
        f"The backend's answer exceeds BACKEND_MAX_RESPONSE_BYTES ({limit} bytes)",
    )


def _event_too_large(limit: int) -> ServiceError:
    return ServiceError(
        502,
        "backend_event_too_large",
        f"An event of the backend's stream exceeds BACKEND_MAX_EVENT_BYTES ({limit} bytes)",
    )


async def _open(
    nexus: NexusContext, method: str, path: str, request: msgspec.Struct | None, body: bytes | None = None
) -> "aiohttp.ClientResponse":
    """The backend's answer, its body not read yet, once its status says it is a success (else the
    OpenAI error). The request body: `body` as received, else `request` encoded.

    A call whose connection failed before any byte of an answer arrived is tried once more: refused, or
    closed by the backend as it was taken from the pool (the keep-alive race; aiohttp retries that
    itself only for idempotent methods, and these are POSTs). The body is bytes: it can be sent again."""
    import aiohttp

    content = body if body is not None else _encode(request) if request is not None else None
    url, headers, session = _url(nexus, path), _headers(nexus), nexus.proxy_http
    try:
        try:
            answer = await session.request(method, url, data=content, headers=headers, allow_redirects=False)
        except aiohttp.ClientConnectionError as error:
            if isinstance(error, TimeoutError):  # aiohttp's timeouts are connection errors too
                raise
            answer = await session.request(method, url, data=content, headers=headers, allow_redirects=False)
    except (aiohttp.ClientError, TimeoutError) as error:
        raise _transport_error(error) from None
    if 200 <= answer.status < 300:
        return answer
    failure = bytearray()
    try:
        while len(failure) < _ERROR_BYTES and (chunk := await answer.content.readany()):
            failure += chunk
    except (aiohttp.ClientError, TimeoutError) as error:
        raise _broken_stream(error) from None
    finally:
        answer.release()  # back to the pool when read whole, else the connection is closed
    raise _backend_error(
        nexus, answer.status, bytes(failure[:_ERROR_BYTES]), answer.headers.get("retry-after")
    )


def _release_cut_answer() -> None:
    """Give back what the connection of an answer cut short had read ahead: a closed connection's
    transport and protocol refer to each other, so their unread buffers (up to 256 KiB per read under
    uvloop) live until a full collection of the cyclic garbage. Measured under httpx (docs/performance.md):
    RSS 61 -> 85 MiB after eight cut 100 MiB answers without this, flat with it; under aiohttp the
    cut-answer tests pass with and without it, so it stays as a guard. A cut answer is rare; the
    collection costs milliseconds."""
    gc.collect()


async def _body(answer: "aiohttp.ClientResponse", limit: int) -> tuple[mmap.mmap, int]:
    """The answer's body, read as it arrives into a buffer of its own, and its size; the 502
    backend_response_too_large once it exceeds `limit` bytes, or when its Content-Length says it will.

    The buffer is an anonymous memory map: its pages are taken as they are written and all given back to
    the system when it is closed, where freed heap memory would stay with the process.
    """
    import aiohttp

    length = answer.content_length
    buffer = mmap.mmap(-1, length if length is not None and 0 < length <= limit else limit)
    try:
        if length is not None and length > limit:
            raise _too_large(limit)
        # each chunk as it arrives; aiohttp stops reading the socket while 64 KiB wait unread
        async for chunk in answer.content.iter_any():
            if buffer.tell() + len(chunk) > len(buffer):
                raise _too_large(limit)
            buffer.write(chunk)
    except (aiohttp.ClientError, TimeoutError) as error:
        buffer.close()
        raise _broken_stream(error) from None
    except BaseException:
        buffer.close()
        raise
    finally:
        answer.release()  # unread bytes: the connection is closed, not returned to the pool
    return buffer, buffer.tell()


async def _sent(buffer: mmap.mmap, size: int) -> AsyncIterator[bytes]:
    """The first `size` bytes of `buffer`, a piece at a time; the buffer closed at the end."""
    try:
        for start in range(0, size, _SENT_BYTES):
            yield buffer[start : min(start + _SENT_BYTES, size)]
    finally:
        buffer.close()


async def _post(nexus: NexusContext, path: str, request: msgspec.Struct, body: bytes | None) -> Stream:
    answer = await _open(nexus, "POST", path, request, body)
    try:
        buffer, size = await _body(answer, nexus.settings.backend_max_response_bytes)
    except ServiceError:  # too large, or broken off: the connection closed with data unread
        _release_cut_answer()
        raise
    exchange = current_exchange()
    if exchange is not None and exchange.generation is not None:
        with memoryview(buffer) as held:
            exchange.generation.count(read_usage(held[:size]))
    return Stream(
        _sent(buffer, size),
        status_code=200,
        media_type=answer.headers.get("content-type", JSON),
        headers={"content-length": str(size)},
    )


async def _lines(answer: "aiohttp.ClientResponse", limit: int) -> AsyncIterator[bytes]:
    """The lines of the answer without their line endings (LF or CRLF); backend_event_too_large for a
    line longer than `limit` bytes, found before more than `limit` bytes of it are held. An unfinished
    last line is dropped (it would end no event)."""
    pending = bytearray()
    async for chunk in answer.content.iter_any():
        pending += chunk
        start = 0
        while (end := pending.find(b"\n", start)) >= 0:
            if end - start > limit:
                raise _event_too_large(limit)
            yield bytes(pending[start:end]).removesuffix(b"\r")
            start = end + 1
        del pending[:start]
        if len(pending) > limit:
            raise _event_too_large(limit)


async def _events(nexus: NexusContext, answer: "aiohttp.ClientResponse") -> AsyncIterator[bytes]:
    """The data of each server-sent event of the backend, up to its [DONE]. An event is complete at its
    blank line (an unfinished one is dropped, as the SSE standard says); a stream that ends without
    [DONE] broke off. An event's data is bounded as its lines are."""
    import aiohttp

    limit = nexus.settings.backend_max_event_bytes
    data: list[bytes] = []
    size = 0
    try:
        async for line in _lines(answer, limit):
            if line.startswith(b"data:"):
                data.append(line[5:].removeprefix(b" "))
                size += len(data[-1])
                if size > limit:
                    raise _event_too_large(limit)
            elif line == b"" and data:  # the end of an event
                event, data, size = b"\n".join(data), [], 0
                if event == b"[DONE]":
                    return
                if event.startswith(b'{"error"'):
                    raise _stream_error(nexus, event)
                yield event
    except (aiohttp.ClientError, TimeoutError) as error:
        answer.close()
        _release_cut_answer()
        raise _broken_stream(error) from None
    except ServiceError:  # an event over the bound: the rest of the stream is left unread
        answer.close()
        _release_cut_answer()
        raise
    finally:
        answer.release()  # the pooled connection, also when the client went away (closed: unread)
    raise ServiceError(502, "backend_error", "The backend's stream broke off before [DONE]")


def _stream_error(nexus: NexusContext, event: bytes) -> ServiceError:
    """The OpenAI error for a backend stream's error event (its message redacted); the event logged."""
    error = _decoded_error(event)
    if error is None:
        _log_failure(
            f"the stream ended with an error: {nexus.redact(event.decode(errors='replace'))[:_LOGGED]}"
        )
        return ServiceError(502, "backend_error", "The backend's stream ended with an error")
    message, code = nexus.redact(error.message), error.text(error.code)
    _log_failure(
        f"the stream ended with an error: {message[:_LOGGED]}", error_type=error.type, error_code=code
    )
    return ServiceError(502, code or "backend_error", f"The backend failed: {message}", type_=error.type)


async def _bytes(answer: "aiohttp.ClientResponse") -> AsyncIterator[bytes]:
    import aiohttp

    try:
        async for chunk in answer.content.iter_any():
            yield chunk
    except (aiohttp.ClientError, TimeoutError) as error:
        raise _broken_stream(error) from None
    finally:
        answer.release()


async def complete(request: msgspec.Struct, nexus: NexusContext, body: bytes | None = None) -> Stream:
    return await _post(nexus, "/v1/chat/completions", request, body)


async def stream(
    request: msgspec.Struct, nexus: NexusContext, body: bytes | None = None
) -> AsyncIterator[bytes]:
    return _events(nexus, await _open(nexus, "POST", "/v1/chat/completions", request, body))


async def embed(request: msgspec.Struct, nexus: NexusContext, body: bytes | None = None) -> Stream:
    return await _post(nexus, "/v1/embeddings", request, body)


async def speak(
    request: msgspec.Struct, nexus: NexusContext, body: bytes | None = None
) -> AsyncIterator[bytes]:
    return _bytes(await _open(nexus, "POST", "/v1/audio/speech", request, body))


async def generate(request: msgspec.Struct, nexus: NexusContext, body: bytes | None = None) -> Stream:
    return await _post(nexus, "/v1/images/generations", request, body)


async def no_backend_check(nexus: NexusContext) -> CheckResult:
    """Readiness of a wrapper without BACKEND_URL: it cannot serve anything."""
    return CheckResult("fail", output="BACKEND_URL is not set")


async def list_models(nexus: NexusContext) -> list[Model]:
    """The backend's GET /v1/models (a ServiceError says why there is none)."""
    answer = await _open(nexus, "GET", "/v1/models", None)
    buffer, size = await _body(answer, nexus.settings.backend_max_response_bytes)
    try:
        return msgspec.json.decode(buffer[:size], type=ModelList).data
    except msgspec.DecodeError:
        raise ServiceError(502, "backend_error", "The backend's model list is not OpenAI's") from None
    finally:
        buffer.close()
