"""The per-process context handed to handlers (as the `nexus` dependency), checks and lifespans.

It holds the process's HTTP clients: `http`, the pool for backends (BACKEND_MAX_CONNECTIONS connections,
which start-up requires to cover MAX_CONCURRENT_REQUESTS when BACKEND_URL is set), and two small clients of
its own for readiness and registration, so that a busy backend pool never fails a probe or lets the etcd
lease expire. Every client retires idle connections after BACKEND_KEEPALIVE_SECONDS, before a backend's own
keep-alive timeout closes them under a request, and tries a request once more when its connection failed
before any byte of an answer arrived (the same race, from the other side).
"""

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from litestar import Request

from nexus_platform._config.facts import ServiceFacts
from nexus_platform._config.settings import ConfigError, PlatformSettings, secret_values
from nexus_platform._identity import Identity
from nexus_platform._observability.generation import LlmMetrics
from nexus_platform._observability.metrics import Metrics
from nexus_platform._observability.redaction import Redactor
from nexus_platform._observability.tracing import forward_context
from nexus_platform._offload import BlockingPool

if TYPE_CHECKING:
    import ssl

    import aiohttp
    import httpx

# readiness and registration make a call or two at a time
_SMALL_POOL = 4
# the longest TCP handshake the wrapper waits for (BACKEND_TIMEOUT_SECONDS is sized for generations)
_CONNECT_SECONDS = 10.0


@dataclass(eq=False)
class NexusContext:
    settings: PlatformSettings
    identity: Identity
    # release/service.env, read at start-up
    facts: ServiceFacts
    # an instance of ServiceSpec.settings (None when the service declares no settings)
    service_settings: Any = None
    instance_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    started_at: str = ""
    # set on SIGTERM: /readyz answers 503 while in-flight work finishes
    draining: bool = False
    # set once the server accepts connections (`python -m app`): registration waits for it
    listening: asyncio.Event = field(default_factory=asyncio.Event)
    # called (on the event loop) when draining begins, e.g. to leave a service registry
    on_drain: list[Callable[[], object]] = field(default_factory=list)
    # the service's own long-lived objects (model handles, clients), set up in its lifespan
    state: dict[str, Any] = field(default_factory=dict)
    running: bool = False
    # GET /metrics (None with METRICS_ENABLED=false): the platform's parts (the gateway's) add collectors
    metrics: Metrics | None = None
    # the LLM metrics (model, tokens, time to first token) the OpenAI routes feed; None with metrics off
    llm_metrics: LlmMetrics | None = None
    # the bounded pool of nexus_platform._offload.run_blocking: MAX_CONCURRENT_REQUESTS threads, started on use
    blocking: BlockingPool = field(init=False)
    # redacts backend error text before it reaches a client, as the log lines are (the secret settings)
    redact: Redactor = field(init=False)
    # the httpx.AsyncClients once opened, by purpose (backend, readiness, registration), typed loosely: httpx
    # is imported on first use, and Litestar evaluates this class's annotations when a handler takes the
    # context as a dependency
    _clients: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_backend_pool(self.settings)
        self.blocking = BlockingPool(self.settings.max_concurrent_requests)
        self.redact = Redactor(secret_values(self.settings, self.service_settings))

    def begin_drain(self) -> None:
        self.draining = True
        for callback in self.on_drain:
            callback()

    @property
    def http(self) -> "httpx.AsyncClient":
        """The shared pooled HTTP client, for backends (the wrapper's calls and the service's own).

        BACKEND_MAX_CONNECTIONS connections; opened on first use while the app runs (httpx is imported
        then: a cold start does not wait for it) and closed when the app stops (lifespan).
        """
        return self._client("backend", self.settings.backend_max_connections)

    @property
    def proxy_http(self) -> "aiohttp.ClientSession":
        """The wrapper's pool (openai/_proxy.py): BACKEND_MAX_CONNECTIONS connections of aiohttp, whose
        pool hands out a connection in constant time where httpcore's scans every pooled connection, a
        syscall each, twice per request (docs/performance.md, "The proxy path"). Opened on first use
        while the app runs (aiohttp is imported then) and closed when the app stops."""
        if not self.running:
            raise RuntimeError("the HTTP clients exist only while the app is running (lifespan)")
        if "proxy" not in self._clients:
            self._clients["proxy"] = _open_session(self.settings)
        session: aiohttp.ClientSession = self._clients["proxy"]
        return session

    @property
    def readiness_http(self) -> "httpx.AsyncClient":
        """The readiness checks' own client: a full backend pool does not fail /readyz."""
        return self._client("readiness", _SMALL_POOL)

    def own_client(self, purpose: str, tls: "ssl.SSLContext | None" = None) -> "httpx.AsyncClient":
        """A small client of `purpose`'s own (the etcd registration's: a full backend pool does not let
        its lease expire; it alone trusts ETCD_CA_FILE and presents ETCD_CERT_FILE), closed with the
        others."""
        return self._client(purpose, _SMALL_POOL, tls)

    def _client(
        self, purpose: str, connections: int, tls: "ssl.SSLContext | None" = None
    ) -> "httpx.AsyncClient":
        if not self.running:
            raise RuntimeError("the HTTP clients exist only while the app is running (lifespan)")
        if purpose not in self._clients:
            self._clients[purpose] = _open_client(self.settings, connections, tls)
        client: httpx.AsyncClient = self._clients[purpose]
        return client

    async def close_http(self) -> None:
        clients, self._clients = self._clients, {}
        for client in clients.values():
            # httpx's AsyncClient.aclose, aiohttp's ClientSession.close
            await (client.aclose() if hasattr(client, "aclose") else client.close())


def check_backend_pool(settings: PlatformSettings) -> None:
    """ConfigError when the backend pool cannot serve every concurrent request at once: the requests over
    it would wait for a connection, unseen, until they time out (MAX_CONCURRENT_REQUESTS says nothing
    queues)."""
    if settings.backend_url and settings.max_concurrent_requests > settings.backend_max_connections:
        raise ConfigError(
            f"MAX_CONCURRENT_REQUESTS ({settings.max_concurrent_requests}) exceeds BACKEND_MAX_CONNECTIONS "
            f"({settings.backend_max_connections}): raise BACKEND_MAX_CONNECTIONS to at least "
            "MAX_CONCURRENT_REQUESTS, or lower the limit"
        )


def _open_client(
    settings: PlatformSettings, connections: int, tls: "ssl.SSLContext | None" = None
) -> "httpx.AsyncClient":
    import httpx

    class RetryOnce(httpx.AsyncHTTPTransport):
        """httpx's transport, trying a request once more when its connection failed before any byte of
        an answer arrived: refused, or closed by the backend as it was taken from the pool (the
        keep-alive race). Only a request whose body can be sent again (bytes, as the wrapper sends)."""

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            try:
                return await super().handle_async_request(request)
            except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError):
                # the answer has not started (this method returns with its status line)
                if not isinstance(request.stream, httpx.ByteStream):
                    raise
                return await super().handle_async_request(request)

    limits = httpx.Limits(
        max_connections=connections,
        max_keepalive_connections=connections,
        keepalive_expiry=settings.backend_keepalive_seconds,
    )
    return httpx.AsyncClient(
        # None: httpx's default verification (the system's trust store, or SSL_CERT_FILE)
        transport=RetryOnce(limits=limits, verify=True if tls is None else tls),
        timeout=settings.backend_timeout_seconds,
        # each call carries the request id and trace context of the request that makes it
        event_hooks={"request": [forward_context]},
    )


def _open_session(settings: PlatformSettings) -> "aiohttp.ClientSession":
    import aiohttp

    seconds = settings.backend_timeout_seconds
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(
            limit=settings.backend_max_connections,
            limit_per_host=0,
            keepalive_timeout=settings.backend_keepalive_seconds,
        ),
        # waiting for a pooled connection and each read (the status line, every chunk) within
        # BACKEND_TIMEOUT_SECONDS, no bound on the whole answer; the TCP handshake within 10 s at most: a
        # host that drops the connection is unreachable, not a long generation
        timeout=aiohttp.ClientTimeout(
            total=None, connect=seconds, sock_connect=min(seconds, _CONNECT_SECONDS), sock_read=seconds
        ),
        # a compressed answer would be inflated a whole piece at a time, past the bounds on its size
        auto_decompress=False,
        # a backend's cookies are not the next caller's
        cookie_jar=aiohttp.DummyCookieJar(),
    )


def nexus_of(request: Request[Any, Any, Any]) -> NexusContext:
    """The context of the app handling `request`: `nexus = nexus_of(request)` in a handler.

    (Cheaper per request than a Litestar dependency; the example endpoint shows it.)
    """
    nexus: NexusContext = request.app.state.nexus
    return nexus
