"""uvicorn's httptools HTTP/1.1 protocol, guarded against slow, silent and oversized clients.

A subclass, because no uvicorn.Config option does these jobs (checked against uvicorn 0.54's Config):

- an idle timeout before the first byte: `timeout_keep_alive` is armed only after a response, never for a
  connection that sends nothing; here uvicorn's keep-alive timer is armed at once: the socket is closed;
- a header-read timeout from a request's first read to the end of its headers: no option at all; 408,
  then closed;
- the head size (request line and headers, as received) counted while reading: `h11_max_incomplete_event_size`
  bounds it for the slower h11 protocol only, and httptools buffers a head whole before anything can refuse
  it; 431, then closed;
- a linger limit: a connection whose response went out while its body is still arriving is closed after
  the idle timeout even if bytes keep trickling in (no option);
- a connection cap below the open-files limit: `limit_concurrency` counts connections and running
  requests together, probes included, and answers every request beyond it 503; here a new connection
  beyond the cap gets 503 and is closed, and the connections already open keep being served.

What options do cover, they do: `timeout_keep_alive` (IDLE_TIMEOUT_SECONDS between requests),
`timeout_graceful_shutdown`, `server_header=False` (nexus_platform._server.config).
Slow bodies are the ASGI layer's business (nexus_platform._http.exchange): only it knows when the app waits.
"""

import asyncio
import logging
import secrets
import time
from typing import Any, ClassVar

import msgspec

from nexus_platform._compat import (
    UvicornHttpProtocol,
    arm_keep_alive_timer,
    cancel_keep_alive_timer,
    keep_alive_timer_armed,
    request_cycle,
)
from nexus_platform._http.errors import JSON, error_body

__all__ = ["ConnectionLimits", "GuardedHttpToolsProtocol", "guarded_protocol"]

logger = logging.getLogger("nexus.protocol")


class ConnectionLimits(msgspec.Struct, frozen=True, kw_only=True):
    idle_timeout: float
    header_timeout: float
    max_head_bytes: int
    max_connections: int


def _raw_response(status: int, message: str, code: str) -> tuple[bytes, bytes]:
    """A complete response that closes the connection, split where its request id goes."""
    body = error_body(status, message, code=code)
    head = (
        f"HTTP/1.1 {status} {_REASONS[status]}\r\ncontent-type: {JSON}\r\ncontent-length: {len(body)}\r\n"
        "cache-control: no-store\r\nconnection: close\r\nx-request-id: "
    )
    return head.encode(), b"\r\n\r\n" + body


_REASONS = {408: "Request Timeout", 431: "Request Header Fields Too Large", 503: "Service Unavailable"}
_HEADER_TIMEOUT = _raw_response(
    408, "The request headers did not arrive within HEADER_TIMEOUT_SECONDS", "header_timeout"
)
_HEAD_TOO_LARGE = _raw_response(
    431,
    "The request line and headers are larger than this service accepts (MAX_HEADER_BYTES)",
    "headers_too_large",
)
_TOO_MANY_CONNECTIONS = _raw_response(
    503, "The service has as many connections open as it can hold; retry shortly", "too_many_connections"
)


class _Throttled:
    """Warnings about misbehaving clients, at most one a minute for each message, with the count of those
    left out in between: a client opening thousands of connections must not flood the log."""

    def __init__(self, period: float = 60.0) -> None:
        self.period = period
        self._quiet_until: dict[str, float] = {}
        self._left_out: dict[str, int] = {}

    def warning(self, message: str) -> None:
        now = time.monotonic()
        if now < self._quiet_until.get(message, 0.0):
            self._left_out[message] = self._left_out.get(message, 0) + 1
            return
        self._quiet_until[message] = now + self.period
        left_out = self._left_out.pop(message, 0)
        logger.warning(message, extra={"same_since_last_line": left_out} if left_out else None)


_warn = _Throttled()


class GuardedHttpToolsProtocol(UvicornHttpProtocol):
    limits: ClassVar[ConnectionLimits]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_timer: asyncio.TimerHandle | None = None
        self._linger_timer: asyncio.TimerHandle | None = None
        self._reading_head = False
        self._head_bytes = 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]  # uvicorn's own: Transport, not BaseTransport
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            _warn.warning("refused a connection: as many open as the open-files limit allows")
            self._answer_and_close(_TOO_MANY_CONNECTIONS)
            return
        # the keep-alive timer doubles as the idle timeout before the first request: any byte cancels it
        arm_keep_alive_timer(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timers()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._reading_head and not self.transport.is_closing():
            # A head still incomplete after this read. Counted after parsing: the read may also hold a
            # pipelined request's tail (then the count is a little high, by at most one read).
            self._head_bytes += len(data)
            if self._head_bytes > self.limits.max_head_bytes:
                _warn.warning("closed a connection: request head over MAX_HEADER_BYTES")
                self._answer_and_close(_HEAD_TOO_LARGE)
            elif self._head_timer is None:
                # armed only for a head split across reads: most heads come in one, and cost no timer
                self._head_timer = self.loop.call_later(self.limits.header_timeout, self._header_timed_out)
        elif self._idle() and not keep_alive_timer_armed(self) and not self.transport.is_closing():
            arm_keep_alive_timer(self)  # bytes that began no request (blank lines): still idle

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._reading_head = True
        self._head_bytes = 0
        if self._linger_timer is not None:
            self._linger_timer.cancel()
            self._linger_timer = None

    def on_headers_complete(self) -> None:
        self._reading_head = False
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        lingering = self._linger_timer is not None
        if self._linger_timer is not None:
            self._linger_timer.cancel()
            self._linger_timer = None
        super().on_message_complete()
        if lingering and not keep_alive_timer_armed(self) and not self.transport.is_closing():
            arm_keep_alive_timer(self)  # the discarded body is complete: an idle keep-alive connection again

    def on_response_complete(self) -> None:
        super().on_response_complete()
        cycle = request_cycle(self)
        if cycle is not None and cycle.more_body and not self.transport.is_closing():
            # the body is still arriving and is discarded: give it the idle timeout, not forever
            self._linger_timer = self.loop.call_later(self.timeout_keep_alive, self.transport.close)

    def _idle(self) -> bool:
        """No request being read or answered on this connection."""
        cycle = request_cycle(self)
        return not self._reading_head and (cycle is None or cycle.response_complete)

    def _header_timed_out(self) -> None:
        self._head_timer = None
        if self._reading_head and not self.transport.is_closing():
            _warn.warning("closed a connection: headers not complete within HEADER_TIMEOUT_SECONDS")
            self._answer_and_close(_HEADER_TIMEOUT)

    def _answer_and_close(self, response: tuple[bytes, bytes]) -> None:
        self._cancel_timers()
        self._reading_head = False
        head, rest = response
        self.transport.write(head + secrets.token_hex(16).encode() + rest)
        self.transport.close()

    def _cancel_timers(self) -> None:
        for timer in (self._head_timer, self._linger_timer):
            if timer is not None:
                timer.cancel()
        self._head_timer = self._linger_timer = None
        cancel_keep_alive_timer(self)


def guarded_protocol(limits: ConnectionLimits) -> type[GuardedHttpToolsProtocol]:
    """The protocol class for uvicorn.Config(http=...), bound to `limits`."""
    return type("NexusHttpProtocol", (GuardedHttpToolsProtocol,), {"limits": limits})
