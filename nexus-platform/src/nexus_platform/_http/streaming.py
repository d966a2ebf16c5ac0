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
from litestar import Litestar, Request, Response
from litestar.background_tasks import BackgroundTask, BackgroundTasks
from litestar.handlers import BaseRouteHandler
from litestar.response import Stream
from litestar.response.base import ASGIResponse

from nexus_platform._http.errors import ServiceError, error_body
from nexus_platform._http.exchange import ENDED_WITH_ERROR_EVENT, Exchange, Outcome, current_exchange
from nexus_platform._server.uvicorn import middleware_of_a_plugin, streamed_in_request_task

__all__ = ["EVENT_STREAM", "byte_stream", "event_stream", "sse_event"]

logger = logging.getLogger("nexus.streaming")

EVENT_STREAM = "text/event-stream"
_DONE = b"data: [DONE]\n\n"
_STREAM_HEADERS = {"cache-control": "no-store", "x-accel-buffering": "no"}  # no proxy buffering
_encode = msgspec.json.Encoder().encode
_DIRECT_CHUNKS_KEY = "nexus_stream_chunks_direct"
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
    exchange = current_exchange()
    if exchange is not None:
        exchange.listen_for_disconnect = True
        if idle_timeout is not None:
            exchange.idle_timeout = idle_timeout
        if max_seconds is not None:
            exchange.max_seconds = max_seconds
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
                if (task := asyncio.current_task()) is not None:
                    task.uncancel()
                logger.warning("stream ended early: %s", ending)
                yield _error_event(ending)
                return
            except Exception as error:
                if isinstance(error, ServiceError):
                    logger.warning("the stream ended with HTTP %s: %s", error.status_code, error.detail)
                else:
                    logger.exception("the stream's producer failed")
                if exchange is not None:
                    exchange.outcome = "producer_error"
                if not events:  # no way to say it in a byte stream: the connection closes unfinished
                    raise asyncio.CancelledError from None
                yield _failure_event(error)
                return
            yield encode(item)
        if events:
            yield _DONE
    finally:
        close = getattr(iterator, "aclose", None)
        if close is not None:
            await close()


def _failure_event(error: Exception) -> bytes:
    if isinstance(error, ServiceError):
        body = error_body(error.status_code, error.detail, code=error.code, param=error.param)
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
        exchange = current_exchange()
        if exchange is not None:
            exchange.direct_chunks = _chunks_pass_through(request.app, request.route_handler)
        return streamed_in_request_task(super().to_asgi_response(app, request, **kwargs))


def _chunks_pass_through(app: Litestar, handler: BaseRouteHandler) -> bool:
    """Whether nothing between the handler and the server can change or observe a body message: no
    middleware on the route (the service's, the app's) or around the app (a plugin's), no compression,
    response cache or before_send hook. Remembered in the handler's `opt` (all fixed once the app runs)."""
    if _DIRECT_CHUNKS_KEY not in handler.opt:
        cached = getattr(handler, "cache", False)
        wrapped = handler.resolve_middleware() or middleware_of_a_plugin(app)
        handler.opt[_DIRECT_CHUNKS_KEY] = not (wrapped or app.compression_config or app.before_send or cached)
    passes: bool = handler.opt[_DIRECT_CHUNKS_KEY]
    return passes


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
