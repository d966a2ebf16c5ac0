# Managed by nexus-template: `copier update` replaces this file. Your code belongs in app/service.py.
"""The per-process context handed to handlers (as the `nexus` dependency), checks and lifespans."""

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from app.nexus.config import PlatformSettings


@dataclass(eq=False)
class NexusContext:
    settings: PlatformSettings
    # an instance of ServiceSpec.settings (None when the service declares no settings)
    service_settings: Any = None
    instance_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    started_at: str = ""
    # set on SIGTERM: /readyz answers 503 while in-flight work finishes
    draining: bool = False
    # called (on the event loop) when draining begins, e.g. to leave a service registry
    on_drain: list[Callable[[], object]] = field(default_factory=list)
    # the service's own long-lived objects (model handles, clients), set up in its lifespan
    state: dict[str, Any] = field(default_factory=dict)
    _http: httpx.AsyncClient | None = None

    def begin_drain(self) -> None:
        self.draining = True
        for callback in self.on_drain:
            callback()

    @property
    def http(self) -> httpx.AsyncClient:
        """The pooled HTTP client, open between start-up and shutdown (lifespan)."""
        if self._http is None:
            raise RuntimeError("the HTTP client exists only while the app is running (lifespan)")
        return self._http
