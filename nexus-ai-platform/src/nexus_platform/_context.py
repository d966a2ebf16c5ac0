"""The per-process context handed to handlers (as the `nexus` dependency), checks and lifespans."""

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from litestar import Request

from nexus_platform._config.facts import ServiceFacts
from nexus_platform._config.settings import PlatformSettings
from nexus_platform._identity import Identity
from nexus_platform._observability.tracing import forward_context
from nexus_platform._offload import BlockingPool

if TYPE_CHECKING:
    import httpx


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
    # the bounded pool of nexus_platform._offload.run_blocking: MAX_CONCURRENT_REQUESTS threads, started on use
    blocking: BlockingPool = field(init=False)
    # an httpx.AsyncClient once opened, typed loosely: httpx is imported on first use, and Litestar evaluates
    # this class's annotations when a handler takes the context as a dependency
    _http: Any = None

    def __post_init__(self) -> None:
        self.blocking = BlockingPool(self.settings.max_concurrent_requests)

    def begin_drain(self) -> None:
        self.draining = True
        for callback in self.on_drain:
            callback()

    @property
    def http(self) -> "httpx.AsyncClient":
        """The one pooled HTTP client of the process, for backends and registries.

        Opened on first use while the app runs (httpx is imported then: a cold start does not wait for
        it) and closed when the app stops (lifespan).
        """
        if not self.running:
            raise RuntimeError("the HTTP client exists only while the app is running (lifespan)")
        if self._http is None:
            import httpx

            # each call carries the request id and trace context of the request that makes it
            self._http = httpx.AsyncClient(
                timeout=self.settings.backend_timeout_seconds, event_hooks={"request": [forward_context]}
            )
        client: httpx.AsyncClient = self._http
        return client

    async def close_http(self) -> None:
        client, self._http = self._http, None
        if client is not None:
            await client.aclose()


def nexus_of(request: Request[Any, Any, Any]) -> NexusContext:
    """The context of the app handling `request`: `nexus = nexus_of(request)` in a handler.

    (Cheaper per request than a Litestar dependency; the example endpoint shows it.)
    """
    nexus: NexusContext = request.app.state.nexus
    return nexus
