"""Streaming responses: server-sent events in OpenAI's format, and byte streams (audio).

Return `event_stream(producer)` or `byte_stream(producer, media_type)` from a handler. The producer is
an async iterator (an `async def` generator) that you write; the platform

- encodes each item: `data: {json}` + a blank line for events, the bytes as they are for byte streams;
- ends an event stream with `data: [DONE]`, as OpenAI does;
- bounds the stream by its first bytes (REQUEST_TIMEOUT_SECONDS), the silence between chunks
  (STREAM_IDLE_TIMEOUT_SECONDS, or `idle_timeout=`) and its whole length (STREAM_MAX_SECONDS, or
  `max_seconds=`), instead of one wall clock over the whole response;
- when the producer raises (a ServiceError's status, code and message are kept), or a limit or the shutdown grace ends the stream, sends an error event
  (`data: {"error": {...}}`, which the OpenAI SDK raises as APIError) and no [DONE]; a byte stream has
  no such event, so its connection closes without the end of the chunked body: the client sees a
  truncated response, never a clean end;
- cancels the producer when the client disconnects (its `finally` runs at once and may still use
  `nexus.http`); the request's slot is free as soon as it returns.

The access line of a stream is written when it ends, with the bytes sent and `outcome` when it ended
early. Streams run in the request's own task, so a cancellation reaches the producer directly.
"""

import asyncio
import logging
from collections.abc import AsyncIterable, AsyncIterator, Callable, Mapping
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.background_tasks import BackgroundTask, BackgroundTasks
from litestar.response import Stream
from litestar.response.base import ASGIResponse

from nexus_platform._compat import streamed_in_request_task
from nexus_platform._http.errors import ServiceError, error_body
from nexus_platform._http.exchange import ENDED_WITH_ERROR_EVENT, Exchange, Outcome, current_exchange

__all__ = ["EVENT_STREAM", "byte_stream", "event_stream", "sse_event"]

logger = logging.getLogger("nexus.streaming")

EVENT_STREAM = "text/event-stream"
_DONE = b"data: [DONE]\n\n"
_STREAM_HEADERS = {"cache-control": "no-store", "x-accel-buffering": "no"}  # no proxy buffering
_encode = msgspec.json.Encoder().encode
_END_MESSAGES = {
    "first_byte_timeout": (504, "timeout", "The stream sent nothing within REQUEST_TIMEOUT_SECONDS"),
    "idle_timeout": (504, "stream_idle_timeout", "The stream was silent longer than this service allows"),
    "stream_time_limit": (504, "stream_time_limit", "The stream ran longer than this service allows"),
    "shutdown": (503, "shutting_down", "The service shut down before the stream finished; retry"),
    "producer_error": (500, "internal_error", "The service failed while streaming this response"),
}


def sse_event(data: Any) -> bytes:
    """One server-sent event: `data: <json>` and a blank line (bytes and str are sent as they are)."""
    if isinstance(data, str):
        data = data.encode()
    return b"data: " + (data if isinstance(data, bytes) else _encode(data)) + b"\n\n"


def _error_event(outcome: str) -> bytes:
    status, code, message = _END_MESSAGES[outcome]
    return b"data: " + error_body(status, message, code=code) + b"\n\n"


async def _guarded(
    producer: AsyncIterable[Any],
    encode: Callable[[Any], bytes],
    *,
    events: bool,
    idle_timeout: float | None,
    max_seconds: float | None,
) -> AsyncIterator[bytes]:
    """The producer's chunks, encoded, with the platform's end: [DONE], or an error event and why."""
    exchange = _streaming_exchange(idle_timeout, max_seconds)
    iterator = aiter(producer)
    try:
        while True:
            try:
                item = await anext(iterator)
            except StopAsyncIteration:
                break
            except asyncio.CancelledError:
                ending = _platform_ending(exchange) if events else None
                if ending is None:
                    raise
                yield _ended_event(ending)
                return
            except Exception as error:  # noqa: BLE001 - the service's producer: any failure ends the stream
                yield _failure_event(error, exchange, events=events)
                return
            yield encode(item)
        if events:
            yield _DONE
    finally:
        close = getattr(iterator, "aclose", None)
        if close is not None:
            await close()


def _streaming_exchange(idle_timeout: float | None, max_seconds: float | None) -> Exchange | None:
    """The request's exchange, told that a platform stream runs (and its own limits, if any)."""
    exchange = current_exchange()
    if exchange is not None:
        exchange.listen_for_disconnect = True
        if idle_timeout is not None:
            exchange.idle_timeout = idle_timeout
        if max_seconds is not None:
            exchange.max_seconds = max_seconds
    return exchange


def _ended_event(ending: Outcome) -> bytes:
    """The platform ended the stream (a limit, the shutdown grace): the request goes on to send why."""
    if (task := asyncio.current_task()) is not None:
        task.uncancel()
    logger.warning("stream ended early: %s", ending)
    return _error_event(ending)


def _failure_event(error: Exception, exchange: Exchange | None, *, events: bool) -> bytes:
    """The event that says the producer failed; a byte stream has none: it is cut off (CancelledError)."""
    if isinstance(error, ServiceError):
        logger.warning("the stream ended with HTTP %s: %s", error.status_code, error.detail)
    else:
        logger.error("the stream's producer failed", exc_info=error)
    if exchange is not None:
        exchange.outcome = "producer_error"
    if not events:  # no way to say it in a byte stream: the connection closes unfinished
        raise asyncio.CancelledError from None
    if isinstance(error, ServiceError):
        body = error_body(
            error.status_code, error.detail, code=error.code, param=error.param, type_=error.type_
        )
        return b"data: " + body + b"\n\n"
    return _error_event("producer_error")


def _platform_ending(exchange: Exchange | None) -> Outcome | None:
    """Why the platform ended the stream, when the stream still owes the client an error event."""
    if exchange is None or exchange.outcome not in ENDED_WITH_ERROR_EVENT:
        return None
    return exchange.outcome


class _PlatformStream(Stream):
    def to_asgi_response(self, app: Any, request: Request[Any, Any, Any], **kwargs: Any) -> ASGIResponse:
        kwargs["media_type"] = self.media_type  # Litestar would prefer the handler's (JSON)
        return streamed_in_request_task(super().to_asgi_response(app, request, **kwargs))


def _stream(
    producer: AsyncIterable[Any],
    encode: Callable[[Any], bytes],
    media_type: str,
    *,
    events: bool,
    idle_timeout: float | None,
    max_seconds: float | None,
    headers: Mapping[str, str] | None,
    background: BackgroundTask | BackgroundTasks | None,
) -> Response[Any]:
    chunks = _guarded(producer, encode, events=events, idle_timeout=idle_timeout, max_seconds=max_seconds)
    return _PlatformStream(
        chunks,
        media_type=media_type,
        headers={**_STREAM_HEADERS, **(headers or {})},
        background=background,
    )


def event_stream(
    producer: AsyncIterable[Any],
    *,
    idle_timeout: float | None = None,
    max_seconds: float | None = None,
    headers: Mapping[str, str] | None = None,
    background: BackgroundTask | BackgroundTasks | None = None,
) -> Response[Any]:
    """A `text/event-stream` response: each item (a msgspec struct, dict, str or bytes) is one event."""
    return _stream(
        producer,
        sse_event,
        EVENT_STREAM,
        events=True,
        idle_timeout=idle_timeout,
        max_seconds=max_seconds,
        headers=headers,
        background=background,
    )


def byte_stream(
    producer: AsyncIterable[bytes],
    media_type: str,
    *,
    idle_timeout: float | None = None,
    max_seconds: float | None = None,
    headers: Mapping[str, str] | None = None,
    background: BackgroundTask | BackgroundTasks | None = None,
) -> Response[Any]:
    """A chunked response of the producer's bytes (e.g. audio as it is synthesised)."""
    return _stream(
        producer,
        bytes,
        media_type,
        events=False,
        idle_timeout=idle_timeout,
        max_seconds=max_seconds,
        headers=headers,
        background=background,
    )
