"""The gateway's running parts, set up in its lifespan: the routing table, its discovery (etcd watch,
static list), the periodic refresh, the forwarder and the metrics."""

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx

from nexus_platform._context import NexusContext
from nexus_platform._probes.readiness import CheckResult
from nexus_platform._registration.config import etcd_credentials, etcd_tls_context
from nexus_platform.gateway._discovery import EtcdDiscovery, Registration
from nexus_platform.gateway._forward import Forwarder
from nexus_platform.gateway._metrics import GatewayMetrics
from nexus_platform.gateway._settings import GatewaySettings, model_owners, static_urls
from nexus_platform.gateway._table import Instance, InstanceView, RoutingTable

__all__ = ["Gateway"]

logger = logging.getLogger("nexus.gateway")

# how often instances that do not answer yet (a static service still starting) are asked again
_RETRY_SECONDS = 0.5
# an instance's metadata and model list must come within this (a slow one is asked again later)
_INSPECT_TIMEOUT = 5.0


class Gateway:
    def __init__(self, context: NexusContext) -> None:
        settings = context.service_settings
        if not isinstance(settings, GatewaySettings):
            raise TypeError("a gateway's ServiceSpec.settings is GatewaySettings or a subclass of it")
        self.context, self.settings = context, settings
        self.static = static_urls(settings)
        self.metrics = GatewayMetrics(
            lambda: {name: len(each) for name, each in self.table.by_service.items()}
        )
        if context.metrics is not None:  # on the service's GET /metrics
            context.metrics.add(self.metrics.families)
        headers = {"accept-encoding": "identity"}
        if settings.gateway_service_api_key:
            headers["authorization"] = f"Bearer {settings.gateway_service_api_key}"
        self._inspect_http = httpx.AsyncClient(
            timeout=min(_INSPECT_TIMEOUT, context.settings.backend_timeout_seconds)
        )
        self.table = RoutingTable(
            self._inspect_http, headers, context.settings.service_name, model_owners(settings)
        )
        self.forwarder = Forwarder(context.settings, settings, self.metrics)
        self._registered: dict[str, Registration] = {}

    def _wanted(self) -> list[Instance]:
        instances = [Instance(key=url, base_url=url, static=True) for url in self.static]
        instances += [
            Instance(
                key=key, base_url=entry.base_url, expected_name=entry.name, expected_id=entry.instance_id
            )
            for key, entry in self._registered.items()
        ]
        return instances

    async def _found(self, registered: dict[str, Registration]) -> None:
        self._registered = registered
        await self.table.update(self._wanted())

    async def _refresh(self) -> None:
        every = self.settings.gateway_refresh_seconds
        last = time.monotonic()
        while True:
            await asyncio.sleep(min(_RETRY_SECONDS, every))
            try:
                if time.monotonic() - last >= every:
                    last = time.monotonic()
                    await self.table.refresh()
                else:  # those that did not answer yet (a service still starting): again, sooner
                    await self.table.refresh(waiting_only=True)
            except Exception:  # a routing loop never dies: logged, and the next round tries again
                logger.exception("refreshing the routing table failed")

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        context, settings = self.context, self.context.settings
        tasks = []
        if self.static:
            await self.table.update(self._wanted())
        if context.identity.registration and settings.etcd_url:
            discovery = EtcdDiscovery(
                context.own_client("gateway-discovery", etcd_tls_context(settings)),
                [url.strip().rstrip("/") for url in settings.etcd_url.split(",") if url.strip()],
                settings.etcd_key_prefix,
                etcd_credentials(settings),
                self._found,
            )
            tasks.append(asyncio.ensure_future(discovery.run()))
        elif not self.static:
            logger.warning("no upstreams: set GATEWAY_SERVICES, <NAME>_BASE_URL variables or ETCD_URL")
        tasks.append(asyncio.ensure_future(self._refresh()))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await self.forwarder.aclose()
            await self._inspect_http.aclose()

    async def check(self, _context: NexusContext) -> CheckResult:
        """`gateway:routes`: warn while no instance is routable (every model answers 404 then)."""
        count = sum(len(each) for each in self.table.by_service.values())
        if count:
            return CheckResult("pass", observed_value=count, observed_unit="instances")
        return CheckResult("warn", observed_value=0, observed_unit="instances", output="no routable instance")

    def view(self) -> list[InstanceView]:
        now = time.monotonic()
        return [
            InstanceView(
                key=each.key,
                service=each.name,
                instance_id=each.instance_id,
                base_url=each.base_url,
                routable=each.routable,
                cooling=each.cool_until > now,
                outstanding=each.outstanding,
                capabilities=each.capabilities,
                models=[model.id for model in each.models],
            )
            for each in sorted(self.table.instances.values(), key=lambda each: each.key)
        ]
