# Managed by nexus-template: `copier update` replaces this file. Your code belongs in app/service.py.
"""The outermost ASGI layer, around the Litestar app. For every HTTP request it:

- keeps a valid X-Request-ID or makes one, and puts it on the response and on every log line;
- answers GET /health, /readyz, /v1/metadata and /v1/models itself from pre-encoded bytes (probes
  and the gateway call them constantly; they skip the framework and are never limited), and their
  spellings with a trailing or doubled slash (/health/, //health) the same way;
- answers 431 when the headers are larger than MAX_HEADER_BYTES;
- limits the other requests to MAX_CONCURRENT_REQUESTS at once, answering 503 at once beyond that;
- cancels a request that runs past REQUEST_TIMEOUT_SECONDS and answers 504;
- writes one access line and records the request's metrics (app.nexus.observe) when the response is done;
- while the service drains, adds `Connection: close` to every response, so clients and gateways stop
  reusing their connections to this replica.

It sits outside Litestar because Litestar's router answers 404/405 without running user middleware.
"""

import asyncio
import logging
import time

from litestar.types import ASGIApp, Message, Receive, Scope, Send

from app.nexus.context import NexusContext
from app.nexus.correlation import HEADER, read_headers, request_id_var
from app.nexus.errors import CLIENT_GONE, JSON, error_body
from app.nexus.metrics import UNROUTED
from app.nexus.observe import Observer
from app.nexus.probes import FastRoute

logger = logging.getLogger("nexus.asgi")

_OVERLOADED = error_body(
    503,
    "The service is at its concurrency limit; retry shortly",
    code="overloaded",
)
_TIMED_OUT = error_body(504, "The request took longer than this service allows", code="timeout")
_HEADERS_TOO_LARGE = error_body(
    431,
    "The request headers are larger than this service accepts (MAX_HEADER_BYTES)",
    code="headers_too_large",
)


def _headers(content_type: str, length: int, request_id: bytes, *extra: tuple[bytes, bytes]) -> list:
    return [
        (b"content-type", content_type.encode()),
        (b"content-length", str(length).encode()),
        (b"cache-control", b"no-store"),
        (HEADER, request_id),
        *extra,
    ]


async def _send_bytes(send: Send, status: int, headers: list, body: bytes) -> int:
    """Send a whole response; return the body bytes sent."""
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
    return len(body)


def _closing_connection(send: Send) -> Send:
    """`send` with `Connection: close` added to the response headers."""

    async def closing(message: Message) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [*message.get("headers", ()), (b"connection", b"close")]
        await send(message)

    return closing


class NexusASGI:
    def __init__(
        self,
        app: ASGIApp,
        context: NexusContext,
        fast_routes: dict[str, FastRoute],
        observer: Observer,
        *,
        max_concurrent_requests: int,
        request_timeout_seconds: float,
        max_header_bytes: int,
    ) -> None:
        self.app = app
        # the process-wide state (draining flag, settings), for the server and tests
        self.context = context
        self.fast_routes = fast_routes
        self.probe_paths = {probe: path for path, probe in fast_routes.items()}
        self.observer = observer
        self.limit = max_concurrent_requests
        self.deadlines = Deadlines(request_timeout_seconds)
        self.max_header_bytes = max_header_bytes
        self.in_flight = 0
        # since start, for the metrics: answered 503 by the limit, cancelled by the timeout
        self.rejected = 0
        self.timeouts = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id, header_bytes, traceparent, fresh = read_headers(scope["headers"])
        token = request_id_var.set(request_id)
        trace = self.observer.start_trace(scope, traceparent, request_id if fresh else None)
        status = 500
        exchange = [0, 0]  # body bytes received, sent
        if self.context.draining:
            send = _closing_connection(send)
        try:
            probe = self._probe(scope["path"]) if scope["method"] == "GET" else None
            if header_bytes > self.max_header_bytes:
                status = 431
                headers = _headers(JSON, len(_HEADERS_TOO_LARGE), request_id.encode())
                exchange[1] = await _send_bytes(send, status, headers, _HEADERS_TOO_LARGE)
            elif probe is not None:
                answer = await probe(scope)
                status = answer.status_code
                headers = _headers(answer.media_type, len(answer.body), request_id.encode())
                exchange[1] = await _send_bytes(send, status, headers, answer.body)
            elif self.in_flight >= self.limit:
                status = 503
                self.rejected += 1
                headers = _headers(
                    JSON,
                    len(_OVERLOADED),
                    request_id.encode(),
                    (b"retry-after", b"1"),
                    (b"x-should-retry", b"true"),
                )
                exchange[1] = await _send_bytes(send, status, headers, _OVERLOADED)
            else:
                status = await self._limited(scope, receive, send, request_id.encode(), exchange)
        finally:
            # the metric label: the probe's own path (never an alias such as /health/), or the route template
            route = self.probe_paths[probe] if probe is not None else scope.get("path_template", UNROUTED)
            self.observer.finish(
                scope["method"], scope["path"], route, status, started, request_id, trace, exchange
            )
            request_id_var.reset(token)

    def _probe(self, path: str) -> FastRoute | None:
        probe = self.fast_routes.get(path)
        if probe is None and (path.endswith("/") or "//" in path):
            probe = self.fast_routes.get("/" + "/".join(part for part in path.split("/") if part))
        return probe

    async def _limited(
        self, scope: Scope, receive: Receive, send: Send, request_id: bytes, exchange: list[int]
    ) -> int:
        """Run one counted request under the timeout; return the status sent (499: the client left first).

        `exchange` receives the body bytes received and sent."""
        status = 500
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                status = message["status"]
                started = True
                headers = message.setdefault("headers", [])
                if isinstance(headers, list):
                    headers.append((HEADER, request_id))
                else:
                    message["headers"] = [*headers, (HEADER, request_id)]
            else:
                exchange[1] += len(message.get("body", b""))
            await send(message)

        async def counting_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                exchange[0] += len(message.get("body", b""))
            elif message["type"] == "http.disconnect":
                scope[CLIENT_GONE] = True  # type: ignore[literal-required]
            return message

        self.in_flight += 1
        task = self.deadlines.watch()
        try:
            await self.app(scope, counting_receive, send_with_id)
        except asyncio.CancelledError:
            if not self.deadlines.expired(task):
                raise
            task.uncancel()
            self.timeouts += 1
            logger.warning("request cancelled after REQUEST_TIMEOUT_SECONDS=%g", self.deadlines.timeout)
            if started:
                raise
            status = 504
            headers = _headers(JSON, len(_TIMED_OUT), request_id)
            exchange[1] += await _send_bytes(send, status, headers, _TIMED_OUT)
        finally:
            self.in_flight -= 1
            self.deadlines.forget(task)
        if status >= 500 and scope.get(CLIENT_GONE):
            return 499  # nginx's "client closed request": the client hung up, not a server error
        return status


class Deadlines:
    """Request timeouts with one watchdog task instead of a timer per request (asyncio.timeout costs more
    than the rest of this layer). Precision: a tenth of the timeout, at most 0.1 s."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._interval = min(0.1, timeout / 10)
        self._deadlines: dict[asyncio.Task, float] = {}
        self._expired: set[asyncio.Task] = set()
        self._watchdog: asyncio.Task | None = None

    def watch(self) -> asyncio.Task:
        """Give the current request task its deadline; return the task."""
        task = asyncio.current_task()
        assert task is not None
        self._deadlines[task] = time.monotonic() + self.timeout
        if self._watchdog is None:
            self._watchdog = asyncio.create_task(self._watch(), name="nexus-request-deadlines")
        return task

    def expired(self, task: asyncio.Task) -> bool:
        return task in self._expired

    def forget(self, task: asyncio.Task) -> None:
        self._deadlines.pop(task, None)
        self._expired.discard(task)

    async def _watch(self) -> None:
        """Cancel overdue requests; ends when no request is left (the next one starts it again)."""
        try:
            while self._deadlines:
                await asyncio.sleep(self._interval)
                now = time.monotonic()
                for task, deadline in list(self._deadlines.items()):
                    if deadline <= now and task not in self._expired:
                        self._expired.add(task)
                        task.cancel()
        finally:
            self._watchdog = None
