"""The outermost ASGI layer, around the Litestar app. For every HTTP request it:

- keeps a valid X-Request-ID or makes one, and puts it on the response and on every log line;
- answers 400 to a request with no Host header or several, or a Host that ALLOWED_HOSTS does not list
  (DNS rebinding: a web page can make a browser send anything to a developer's local port, but not with
  the service's name in Host);
- with API_KEYS set, answers 401 to a request without a valid key (403 where the service's `authorize`
  refuses it) before any body is read, on every route but the liveness and readiness probes
  (nexus_platform._edge.access);
- answers GET /health, /readyz, /v1/metadata and /v1/models itself from pre-encoded bytes (probes
  and the gateway call them constantly; they skip the framework and are never limited), and their
  spellings with a trailing or doubled slash (/health/, //health) the same way;
- answers 431 when the headers are larger than MAX_HEADER_BYTES;
- limits the other requests to MAX_CONCURRENT_REQUESTS at once, and each caller (key, or client address
  without keys) to MAX_CONCURRENT_REQUESTS_PER_CALLER, answering 503 at once beyond that (blocking work a
  cancelled request left running still counts: nexus_platform._offload);
- cancels a request that runs past REQUEST_TIMEOUT_SECONDS and answers 504, and one whose body stalls or
  trickles (BODY_TIMEOUT_SECONDS, MIN_BODY_BYTES_PER_SECOND) and answers 408 (every deadline, streams'
  included, is watched by nexus_platform._http.exchange on one clock);
- serves HEAD wherever GET is served (the same headers, no body);
- writes one access line, with the bytes sent and why the request ended early, and records the request's
  metrics (nexus_platform._edge.observe) when the response is done;
- while the service drains, adds `Connection: close` to every response, so clients and gateways stop
  reusing their connections to this replica.

It sits outside Litestar because Litestar's router answers 404/405 without running user middleware.
"""

import asyncio
import logging
import time

from litestar.enums import ScopeType
from litestar.types import ASGIApp, HTTPScope, Message, Receive, Scope, Send, WebSocketCloseEvent

from nexus_platform._context import NexusContext
from nexus_platform._edge.access import Access, Caller, presented_key
from nexus_platform._edge.headers import RequestHeaders, read_headers
from nexus_platform._edge.observe import Observer
from nexus_platform._http.errors import JSON, NO_RETRY, error_body
from nexus_platform._http.exchange import Exchange, Exchanges
from nexus_platform._observability.correlation import HEADER, request_id_var
from nexus_platform._observability.generation import Generation
from nexus_platform._observability.metrics import UNROUTED
from nexus_platform._probes.probes import FastRoute

logger = logging.getLogger("nexus.asgi")

_OVERLOADED = error_body(
    503,
    "The service is at its concurrency limit; retry shortly",
    code="overloaded",
)
_TIMED_OUT = error_body(504, "The request took longer than this service allows", code="timeout")
# a retry would repeat the failure (and the work): the OpenAI SDK retries every 5xx unless told not to
_SAME_FAILURE_AGAIN = frozenset({500, 504})
_SHUT_DOWN = error_body(503, "The service shut down before the request finished; retry", code="shutting_down")
# outcomes counted by the timeouts metric: a time limit cancelled the request
_TIME_LIMITS = frozenset({"timeout", "first_byte_timeout", "idle_timeout", "stream_time_limit"})
_BODY_TOO_SLOW = error_body(
    408,
    "The request body arrived too slowly (BODY_TIMEOUT_SECONDS, MIN_BODY_BYTES_PER_SECOND)",
    code="body_timeout",
)
_BAD_HOST = error_body(
    400,
    "The request needs exactly one Host header, naming a host this service serves (ALLOWED_HOSTS)",
    code="invalid_host",
)
_NO_KEY = error_body(
    401,
    "Missing or invalid API key: send it as Authorization: Bearer <key>",
    code="invalid_api_key",
)
_CHALLENGE = (b"www-authenticate", b'Bearer realm="nexus"')
_REFUSED = error_body(403, "This key may not call this route", code="permission_denied")
# the probes an orchestrator calls: no key, and any single Host (kubelet sends the pod's IP)
_OPEN_PROBES = frozenset({"/health", "/readyz"})
_METRICS = "/metrics"
# what a request is refused with before the app sees it: status, body, extra headers
_Refusal = tuple[int, bytes, tuple[tuple[bytes, bytes], ...]]
_HEADERS_TOO_LARGE = error_body(
    431,
    "The request headers are larger than this service accepts (MAX_HEADER_BYTES)",
    code="headers_too_large",
)


def _headers(
    content_type: str, length: int, request_id: bytes, *extra: tuple[bytes, bytes]
) -> list[tuple[bytes, bytes]]:
    return [
        (b"content-type", content_type.encode()),
        (b"content-length", str(length).encode()),
        (b"cache-control", b"no-store"),
        (HEADER, request_id),
        *extra,
    ]


async def _send_bytes(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> int:
    """Send a whole response; return the body bytes sent."""
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})
    return len(body)


def _client(scope: Scope) -> str:
    client = scope.get("client")
    return client[0] if client else ""


def _closing_connection(send: Send) -> Send:
    """`send` with `Connection: close` added to the response headers."""

    async def closing(message: Message) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [*message.get("headers", ()), (b"connection", b"close")]
        await send(message)

    return closing


class NexusASGI:
    """The settings come from `context.settings` (one object: MAX_CONCURRENT_REQUESTS, MAX_HEADER_BYTES and
    the deadlines nexus_platform._http.exchange enforces)."""

    def __init__(
        self,
        app: ASGIApp,
        context: NexusContext,
        fast_routes: dict[str, FastRoute],
        observer: Observer,
        access: Access,
    ) -> None:
        settings = context.settings
        self.app = app
        # the process-wide state (draining flag, settings), for the server and tests
        self.context = context
        self.fast_routes = fast_routes
        self.probe_paths = {probe: path for path, probe in fast_routes.items()}
        self.observer = observer
        self.access = access
        self.limit = settings.max_concurrent_requests
        self.caller_limit = settings.max_concurrent_requests_per_caller or max(1, -(-self.limit * 3 // 4))
        self.per_caller: dict[str, int] = {}  # requests in flight per caller; a caller with none is absent
        self.max_header_bytes = settings.max_header_bytes
        self.exchanges = Exchanges(settings)
        self.in_flight = 0
        # since start, for the metrics: answered 503 by the limit, cancelled by a time limit
        self.rejected = 0
        self.timeouts = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self._not_http(scope, receive, send)
            return
        started = time.monotonic()  # the clock of every deadline (nexus_platform._http.exchange)
        seen = read_headers(scope["headers"])
        request_id = seen.request_id
        token = request_id_var.set(request_id)
        trace = self.observer.start_trace(scope, seen.traceparent, request_id if seen.fresh_id else None)
        status = 500
        received = sent = 0
        outcome = key = None
        generation = None
        method = scope["method"]
        if method == "HEAD":  # routed as GET; the server sends no body for HEAD
            scope = {**scope, "method": "GET"}
        if self.context.draining:
            send = _closing_connection(send)
        try:
            probe = self._probe(scope["path"]) if scope["method"] == "GET" else None
            open_probe = probe is not None and self.probe_paths[probe] in _OPEN_PROBES
            refusal: _Refusal | None = None
            if seen.size > self.max_header_bytes:
                refusal = 431, _HEADERS_TOO_LARGE, ()
            elif seen.hosts != 1 or not (open_probe or self.access.hosts.allows(seen.host or b"")):
                refusal = 400, _BAD_HOST, ()
            elif not open_probe:
                key, refusal = self._authorize(scope, seen, probe)
            if refusal is not None:
                status, body, extra = refusal
                headers = _headers(JSON, len(body), request_id.encode(), *extra)
                sent = await _send_bytes(send, status, headers, body)
            elif probe is not None:
                answer = await probe(scope)
                status = answer.status_code
                headers = _headers(answer.media_type, len(answer.body), request_id.encode())
                sent = await _send_bytes(send, status, headers, answer.body)
            else:
                caller = key or _client(scope)
                status, received, sent, outcome, generation = await self._counted(
                    scope, receive, send, started, request_id.encode(), caller
                )
        finally:
            # the metric label: the probe's own path (never an alias such as /health/), or the route template
            route = self.probe_paths[probe] if probe is not None else scope.get("path_template", UNROUTED)
            self.observer.finish(
                method,
                scope["path"],
                route,
                status,
                started,
                request_id,
                trace,
                received,
                sent,
                outcome,
                key,
                generation,
            )
            request_id_var.reset(token)

    async def _not_http(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Lifespan events pass; a WebSocket handshake passes the Host and key checks first."""
        kind: str = scope["type"]  # "lifespan" too, which Litestar's Scope type leaves out
        if kind == ScopeType.WEBSOCKET and not self._websocket_allowed(scope):
            await receive()  # websocket.connect; a close before accept is the server's 403
            close: WebSocketCloseEvent = {"type": "websocket.close", "code": 1008, "reason": ""}
            await send(close)  # policy violation
            return
        await self.app(scope, receive, send)

    def _websocket_allowed(self, scope: Scope) -> bool:
        """A WebSocket handshake passes the same Host and key checks as a request."""
        seen = read_headers(scope["headers"])
        if seen.hosts != 1 or not self.access.hosts.allows(seen.host or b""):
            return False
        return self._authorize(scope, seen, None)[1] is None

    def _authorize(
        self, scope: Scope, seen: RequestHeaders, probe: FastRoute | None
    ) -> tuple[str | None, _Refusal | None]:
        """(the caller's key fingerprint, the refusal to send or None). Only headers are looked at: a
        refused request's body is never read."""
        access = self.access
        is_metrics = probe is not None and self.probe_paths[probe] == _METRICS
        keys = access.metrics_keys if is_metrics else access.keys
        key = keys.fingerprint(presented_key(seen.authorization, seen.api_key)) if keys else None
        verdict = None
        if access.authorize is not None:
            # the path as the router will match it: //v1/x and /v1/x/ reach /v1/x
            path = "/" + "/".join(part for part in scope["path"].split("/") if part)
            method = str(scope.get("method", "WEBSOCKET"))
            verdict = access.authorize(Caller(key, method, path, _client(scope)))
        allowed = (key is not None or not keys) if verdict is None else verdict
        if allowed:
            return key, None
        if keys and key is None:
            return None, (401, _NO_KEY, (_CHALLENGE,))
        return key, (403, _REFUSED, ())

    def _probe(self, path: str) -> FastRoute | None:
        probe = self.fast_routes.get(path)
        if probe is None and (path.endswith("/") or "//" in path):
            probe = self.fast_routes.get("/" + "/".join(part for part in path.split("/") if part))
        return probe

    async def _counted(
        self, scope: HTTPScope, receive: Receive, send: Send, started: float, request_id: bytes, caller: str
    ) -> tuple[int, int, int, str | None, Generation | None]:
        """A request under the concurrency limits: (status, body bytes received and sent, outcome, and
        what it generated when it asked a model)."""
        if (
            self.in_flight + self.context.blocking.abandoned >= self.limit
            or self.per_caller.get(caller, 0) >= self.caller_limit
        ):
            self.rejected += 1
            extra = ((b"retry-after", b"1"), (b"x-should-retry", b"true"))
            headers = _headers(JSON, len(_OVERLOADED), request_id, *extra)
            return 503, 0, await _send_bytes(send, 503, headers, _OVERLOADED), None, None
        self.per_caller[caller] = self.per_caller.get(caller, 0) + 1
        exchange = self.exchanges.open(scope, receive, started)
        try:
            status = await self._limited(scope, exchange, send, request_id)
        finally:
            self.exchanges.close(exchange)
            if (left := self.per_caller.pop(caller) - 1) > 0:
                self.per_caller[caller] = left
        return status, exchange.bytes_received, exchange.bytes_sent, exchange.outcome, exchange.generation

    async def _limited(self, scope: HTTPScope, exchange: Exchange, send: Send, request_id: bytes) -> int:
        """Run one counted request under its deadlines; return the status sent (499: the client left first)."""
        status = 500
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.body":  # every chunk of a stream: keep it cheap
                exchange.sent(message)
            elif message["type"] == "http.response.start":
                status = message["status"]
                started = True
                headers = message.setdefault("headers", [])
                if isinstance(headers, list):
                    headers.append((HEADER, request_id))
                else:
                    message["headers"] = headers = [*headers, (HEADER, request_id)]
                if status in _SAME_FAILURE_AGAIN and all(name != b"x-should-retry" for name, _ in headers):
                    headers.append(NO_RETRY)
                if all(name != b"content-length" for name, _ in headers):
                    exchange.streaming = True  # from now on bounded by first-byte and idle timeouts
            await send(message)

        self.in_flight += 1
        try:
            await self.app(scope, exchange.receive, send_with_id)
        except asyncio.CancelledError:
            if exchange.outcome is None:  # not the platform's (Exchange.end records why first)
                raise
            if (task := asyncio.current_task()) is not None:
                task.uncancel()
            status = await self._ended(exchange, send, request_id, status if started else None)
        finally:
            self.in_flight -= 1
        if exchange.outcome in _TIME_LIMITS:
            self.timeouts += 1
        if status >= 500 and exchange.outcome == "client_disconnected":
            return 499  # nginx's "client closed request": the client hung up, not a server error
        return status

    async def _ended(self, exchange: Exchange, send: Send, request_id: bytes, status: int | None) -> int:
        """The request was cancelled for `exchange.outcome`; answer if nothing was sent yet."""
        outcome = exchange.outcome
        if outcome == "client_disconnected":
            return 499 if status is None else status  # nobody to answer
        if outcome == "timeout":
            logger.warning(
                "request cancelled after REQUEST_TIMEOUT_SECONDS=%g", self.exchanges.request_timeout
            )
        elif outcome == "body_timeout":
            closing = "answered 408" if status is None else "connection closed (the response had started)"
            logger.warning("request body too slow: %s", closing)
        else:
            logger.warning("request ended early: %s", outcome)
        if status is not None:  # a response was under way: the connection closes without its end
            return status
        if outcome == "body_timeout":  # the rest of the body is still on its way: close the connection
            extra = (b"connection", b"close")
            body, status = _BODY_TOO_SLOW, 408
        else:
            body, status = (_SHUT_DOWN, 503) if outcome == "shutdown" else (_TIMED_OUT, 504)
            extra = (b"retry-after", b"1") if status == 503 else NO_RETRY
        headers = _headers(JSON, len(body), request_id, extra)
        exchange.bytes_sent = await _send_bytes(send, status, headers, body)
        return status
