"""What the outer ASGI layer knows about each counted request while it runs, and its one clock.

- `Exchange`: the body bytes received and sent, whether the response streams, and `outcome`, the reason
  when the platform (or the client) ended it early. The access line and the metrics report it. Handlers and
  helpers reach the current one with `current_exchange()`.
- `Exchanges`: the requests in flight and the one watchdog task that enforces every per-request deadline
  on one clock (time.monotonic), a tick at a time (a tenth of REQUEST_TIMEOUT_SECONDS, at most 0.1 s),
  instead of a timer per request (why: docs/performance.md). The deadlines:
  - REQUEST_TIMEOUT_SECONDS for a response sent with Content-Length (outcome `timeout`);
  - a streaming response (one sent without Content-Length) leaves REQUEST_TIMEOUT_SECONDS behind once it
    starts: it must send its first bytes within REQUEST_TIMEOUT_SECONDS of the request, then at most
    STREAM_IDLE_TIMEOUT_SECONDS may pass between chunks, and the whole stream may last STREAM_MAX_SECONDS
    (both can be set per route through nexus_platform._http.streaming);
  - slow bodies: the client may fall at most BODY_TIMEOUT_SECONDS behind a pace of
    MIN_BODY_BYTES_PER_SECOND. The time the app spends waiting in receive() for body bytes is charged
    against a credit of BODY_TIMEOUT_SECONDS, and every byte that arrives earns back
    1/MIN_BODY_BYTES_PER_SECOND seconds (never more than BODY_TIMEOUT_SECONDS in all); a request whose
    wait outlasts its credit ends (outcome `body_timeout`): a silent body is cut off after
    BODY_TIMEOUT_SECONDS, a trickle soon after; time the app spends on anything else is not charged.
    However steady its pace, a body still arriving MAX_BODY_SECONDS after the request began ends the same
    way, so a slow body holds a concurrency slot for MAX_BODY_SECONDS at most.
  The watchdog also notices a client that went away — at once for platform streams, after
  DISCONNECT_CHECK_AFTER seconds for other requests once their body was read (GET: at once) — and cancels
  the work, which frees the slot. On shutdown `end_all` ends what is left after the grace period.

Invariant: a request task is cancelled by the platform only through `Exchange.end`, which records the
outcome first; a cancellation that finds no outcome came from elsewhere (the server) and is not handled.
"""

import asyncio
import time
from contextvars import ContextVar
from typing import TYPE_CHECKING, Literal

from litestar.types import HTTPResponseBodyEvent, HTTPScope, Receive, ReceiveMessage

from nexus_platform._config.settings import PlatformSettings

if TYPE_CHECKING:
    from nexus_platform._observability.generation import Generation

__all__ = [
    "DISCONNECT_CHECK_AFTER",
    "ENDED_WITH_ERROR_EVENT",
    "Exchange",
    "Exchanges",
    "Outcome",
    "current_exchange",
]

Outcome = Literal[
    "body_timeout",  # the request body fell too far behind MIN_BODY_BYTES_PER_SECOND
    "timeout",  # a non-streamed response ran past REQUEST_TIMEOUT_SECONDS
    "first_byte_timeout",  # a stream sent nothing within REQUEST_TIMEOUT_SECONDS
    "idle_timeout",  # a stream sent nothing for STREAM_IDLE_TIMEOUT_SECONDS
    "stream_time_limit",  # a stream ran past STREAM_MAX_SECONDS
    "shutdown",  # still running when the shutdown grace period ended
    "client_disconnected",
    "producer_error",  # a stream's producer raised; the stream ended with an error event
]
# outcomes after which a platform stream still ends with an error event (the client is still there)
ENDED_WITH_ERROR_EVENT = frozenset({"first_byte_timeout", "idle_timeout", "stream_time_limit", "shutdown"})
# seconds a non-streamed request runs before the watchdog starts listening for its client's disconnect
DISCONNECT_CHECK_AFTER = 0.5
_TICK = 0.1
_BODY_HEADERS = frozenset({b"content-length", b"transfer-encoding"})

_exchange_var: ContextVar["Exchange | None"] = ContextVar("nexus_exchange", default=None)


def current_exchange() -> "Exchange | None":
    """The exchange of the request being handled (None outside a counted request)."""
    return _exchange_var.get()


class Exchange:
    __slots__ = (
        "_listener",
        "_quiet_since",
        "_receive",
        "_seen_chunks",
        "_stash",
        "body_credit",
        "body_read",
        "body_timeout",
        "bytes_received",
        "bytes_sent",
        "chunks_sent",
        "complete",
        "generation",
        "idle_timeout",
        "listen_for_disconnect",
        "max_seconds",
        "outcome",
        "seconds_per_byte",
        "started",
        "streaming",
        "task",
        "waiting_since",
    )

    def __init__(
        self,
        receive: Receive,
        started: float,
        idle_timeout: float,
        max_seconds: float,
        body_timeout: float,
        seconds_per_byte: float,
        *,
        bodiless: bool,
    ) -> None:
        self._receive = receive
        self._listener: asyncio.Task[None] | None = None
        self._stash: ReceiveMessage | None = None  # a message the listener read before the app asked for it
        self.task = asyncio.current_task()
        self.started = started
        self.idle_timeout = idle_timeout
        self.max_seconds = max_seconds
        self.bytes_received = 0
        self.bytes_sent = 0
        # a model request's model, tokens and timing (the OpenAI routes set it)
        self.generation: Generation | None = None
        self.chunks_sent = 0  # body messages with bytes
        # the watchdog's view of a stream: the chunks it has seen, and the tick it last saw a new one at
        # (the watchdog reads the clock, a chunk does not)
        self._seen_chunks = 0
        self._quiet_since: float | None = None
        self.streaming = False
        self.complete = False
        self.body_read = bodiless
        self.body_timeout = body_timeout
        self.body_credit = body_timeout  # seconds the client may still keep the app waiting for its body
        self.seconds_per_byte = seconds_per_byte
        self.waiting_since: float | None = None  # while the app waits in receive() for body bytes
        # set by platform streams: listen for the client's disconnect from the first chunk on
        self.listen_for_disconnect = False
        self.outcome: Outcome | None = None

    async def receive(self) -> ReceiveMessage:
        waiting_since = None
        if self._stash is not None:
            message, self._stash = self._stash, None
        elif self.body_read:
            message = await self._receive()
        else:
            self.waiting_since = waiting_since = time.monotonic()
            try:
                message = await self._receive()
            finally:
                self.waiting_since = None
        if message["type"] == "http.request":
            body_bytes = len(message.get("body", b""))
            self.bytes_received += body_bytes
            if waiting_since is not None:
                waited = time.monotonic() - waiting_since
                earned = body_bytes * self.seconds_per_byte
                self.body_credit = min(self.body_timeout, self.body_credit - waited + earned)
            if not message.get("more_body", False):
                self.body_read = True
        elif message["type"] == "http.disconnect" and not self.complete and self.outcome is None:
            self.outcome = "client_disconnected"
        return message

    def sent(self, message: HTTPResponseBodyEvent) -> None:
        """Count an http.response.body message (the ASGI layer calls this for each one)."""
        body = message.get("body", b"")
        if body:
            self.bytes_sent += len(body)
            self.chunks_sent += 1
        if not message.get("more_body", False):
            self.complete = True

    def end(self, outcome: Outcome) -> None:
        """Stop the request's work: the outcome is recorded, then the task is cancelled; platform streams
        then send an error event. The first outcome stands."""
        if self.outcome is None:
            self.outcome = outcome
            if self.task is not None:
                self.task.cancel()

    def _deadline(self, request_timeout: float, now: float) -> tuple[float, Outcome]:
        """The stream's next deadline, and the outcome when it passes (idle time is counted from the tick
        that first saw the last chunk: at most one tick late)."""
        if self.chunks_sent != self._seen_chunks:
            self._seen_chunks, self._quiet_since = self.chunks_sent, now
        why: Outcome
        if self._quiet_since is None:
            deadline, why = self.started + request_timeout, "first_byte_timeout"
        else:
            deadline, why = self._quiet_since + self.idle_timeout, "idle_timeout"
        if self.started + self.max_seconds < deadline:
            return self.started + self.max_seconds, "stream_time_limit"
        return deadline, why

    def _listen(self) -> None:
        if self._listener is None and not self.complete:
            self._listener = asyncio.create_task(self._until_disconnect(), name="nexus-disconnect-listener")

    async def _until_disconnect(self) -> None:
        while not self.complete:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                self.end("client_disconnected")
                return
            self._stash = message  # the (empty) body of a bodiless request, kept for the app

    def _close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            self._listener = None


class Exchanges:
    """The counted requests in flight, watched by one task while there are any."""

    def __init__(self, settings: PlatformSettings) -> None:
        self.request_timeout = settings.request_timeout_seconds
        self.idle_timeout = settings.stream_idle_timeout_seconds
        self.max_seconds = settings.stream_max_seconds
        self.body_timeout = settings.body_timeout_seconds
        self.max_body_seconds = settings.max_body_seconds
        self.seconds_per_byte = 1 / settings.min_body_bytes_per_second
        # deadlines are enforced at most a tick late: a tenth of the request timeout, at most 0.1 s
        self.tick = min(_TICK, self.request_timeout / 10)
        self._open: set[Exchange] = set()
        self._watchdog: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        return len(self._open)

    def open(self, scope: HTTPScope, receive: Receive, started: float) -> Exchange:
        """Register the current request task, which arrived at `started` (time.monotonic()); its exchange
        becomes `current_exchange()`."""
        bodiless = scope["method"] == "GET" and not any(name in _BODY_HEADERS for name, _ in scope["headers"])
        exchange = Exchange(
            receive,
            started,
            self.idle_timeout,
            self.max_seconds,
            self.body_timeout,
            self.seconds_per_byte,
            bodiless=bodiless,
        )
        self._open.add(exchange)
        _exchange_var.set(exchange)
        if self._watchdog is None:
            self._watchdog = asyncio.create_task(self._watch(), name="nexus-exchanges")
        return exchange

    def close(self, exchange: Exchange) -> None:
        self._open.discard(exchange)
        exchange._close()

    def end_all(self, outcome: Outcome) -> int:
        """End every request still in flight (at the end of the shutdown grace); return how many."""
        running = [exchange for exchange in self._open if not exchange.complete]
        for exchange in running:
            exchange.end(outcome)
        return len(running)

    def _check(self, exchange: Exchange, now: float) -> None:
        """End `exchange` if one of its deadlines passed; listen for its client's disconnect once due."""
        waiting_since = exchange.waiting_since
        if waiting_since is not None and (
            now - waiting_since >= exchange.body_credit or now - exchange.started >= self.max_body_seconds
        ):
            exchange.end("body_timeout")
        elif exchange.streaming:
            if exchange.complete:
                return
            deadline, why = exchange._deadline(self.request_timeout, now)
            if now >= deadline:
                exchange.end(why)
            elif exchange.listen_for_disconnect:
                exchange._listen()
        elif now - exchange.started >= self.request_timeout:
            # also after a complete response: background tasks run in the request's time
            exchange.end("timeout")
        elif (
            exchange.body_read and not exchange.complete and now - exchange.started >= DISCONNECT_CHECK_AFTER
        ):
            exchange._listen()

    async def _watch(self) -> None:
        try:
            while self._open:
                await asyncio.sleep(self.tick)
                now = time.monotonic()
                for exchange in list(self._open):
                    if exchange.outcome is None:
                        self._check(exchange, now)
        finally:
            self._watchdog = None
