"""Self-registration in etcd, for discovery across hosts and routing by a gateway.

Each instance keeps its own keys on its own lease (ETCD_LEASE_TTL_SECONDS, kept alive every TTL/3):

- `<ETCD_KEY_PREFIX><name>/<instance_id>`: {"name", "base_url", "metadata_url", "version", "capabilities",
  "instance_id", "readiness"};
- with ETCD_TRAEFIK_ROOT set, the keys of Traefik's KV provider: the instance's own router (the service's
  rule, identical for every instance), its strip-prefix middleware, and its server in the service's load
  balancer. No Traefik key is shared between instances, so no instance's departure removes another's route.

The keys exist only while the instance is ready: every round (TTL/3, and at once when a /readyz request
sees the readiness status change) evaluates readiness; `fail` deletes them, `pass`/`warn` puts them back.
Registration starts once the server listens (`python -m app`), never before it can answer.

The service-level key `<ETCD_KEY_PREFIX><name>` of the original layout (one key per service) is kept for
the gateways that read it: it holds one ready instance's value (less `readiness`), on that instance's lease.
A ready instance creates it when it is absent; an instance that withdraws or stops hands it to another
ready instance's lease first, so it stays while any instance is ready.

etcd unreachable: keep serving, retry with backoff, report `warn`. A keepalive answered without TTL means
the lease is gone: register again. SIGTERM revokes the lease at once (the keys disappear before the
service stops serving); after a crash the TTL removes them.
"""

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import msgspec

from nexus_platform._context import NexusContext
from nexus_platform._probes.metadata import RegistrationInfo, RegistrationState
from nexus_platform._probes.readiness import CheckResult, Readiness, ReadinessReport, Status
from nexus_platform._registration.etcd import EtcdClient, EtcdError, absent, delete, on_lease, put

__all__ = ["CHECK_NAME", "Registrar", "traefik_keys"]

logger = logging.getLogger("nexus.registration")

CHECK_NAME = "registration:etcd"
MAX_BACKOFF_SECONDS = 10.0
_WHY_NOT_REGISTERED = {
    "registering": "not registered yet",
    "retrying": "etcd unreachable",
    "withdrawn": "withdrawn while readiness fails",
    "revoked": "revoked: the service is stopping",
}


def _json(value: dict[str, Any]) -> str:
    return json.dumps(value, separators=(",", ":"))


def traefik_keys(root: str, service: str, instance: str, base_url: str) -> dict[str, str]:
    """Traefik's KV-provider keys for one instance: requests to /<service>/… reach <base_url>/…."""
    router = f"{service}-{instance}"
    return {
        f"{root}/http/routers/{router}/rule": f"PathPrefix(`/{service}/`)",
        f"{root}/http/routers/{router}/service": service,
        f"{root}/http/routers/{router}/middlewares/0": router,
        f"{root}/http/middlewares/{router}/stripPrefix/prefixes/0": f"/{service}",
        f"{root}/http/services/{service}/loadBalancer/servers/{instance}/url": base_url,
    }


class Registrar:
    check_name = CHECK_NAME

    def __init__(self, context: NexusContext, on_change: Callable[[], None] = lambda: None) -> None:
        settings = context.settings
        self.context = context
        self.enabled = bool(settings.etcd_url)
        self.service_key = settings.etcd_key_prefix + settings.service_name
        self.key = f"{self.service_key}/{context.instance_id}"
        self.ttl = settings.etcd_lease_ttl_seconds
        self.on_change = on_change
        self.state: RegistrationState = "registering" if self.enabled else "disabled"
        self.last_error: str | None = None
        self.lease: str | None = None
        self._published: dict[str, str] = {}  # the keys put on the current lease
        self._readiness: Readiness | None = None
        self._wake = asyncio.Event()
        self._revoked = asyncio.Event()
        self._endpoints = [url.strip().rstrip("/") for url in settings.etcd_url.split(",") if url.strip()]

    def follow(self, readiness: Readiness) -> None:
        """Stay registered only while `readiness` passes or warns; re-check at once when its status changes."""
        self._readiness = readiness
        readiness.on_change.append(lambda _status: self._wake.set())

    def keys(self, readiness: Status) -> dict[str, str]:
        """Every key this instance puts while ready, with its value."""
        settings = self.context.settings
        base = settings.service_base_url.rstrip("/")
        value = {
            "name": settings.service_name,
            "base_url": base,
            "metadata_url": f"{base}/v1/metadata",
            "version": settings.service_version,
            "capabilities": list(self.context.facts.service_capabilities),
            "instance_id": self.context.instance_id,
            "readiness": readiness,
        }
        keys = {self.key: _json(value)}
        if settings.etcd_traefik_root:
            keys |= traefik_keys(
                settings.etcd_traefik_root, settings.service_name, self.context.instance_id, base
            )
        return keys

    def info(self) -> RegistrationInfo:
        return RegistrationInfo(
            state=self.state,
            key=self.key,
            lease_ttl_seconds=self.ttl if self.enabled else None,
            last_error=self.last_error,
        )

    async def check(self, _context: NexusContext) -> CheckResult:
        """`registration:etcd`: warn, never fail, while not registered (hosts that know us keep routing)."""
        if self.state == "registered":
            return CheckResult("pass", observed_value=self.key)
        reason = _WHY_NOT_REGISTERED.get(self.state, self.state)
        if self.last_error:
            reason += f" ({self.last_error})"
        return CheckResult("warn", observed_value=self.key, output=f"not registered in etcd: {reason}")

    def _set(self, state: RegistrationState, error: str | None = None) -> None:
        if (state, error) != (self.state, self.last_error):
            self.state, self.last_error = state, error
            self.on_change()

    def _client(self) -> EtcdClient:
        return EtcdClient(self.context.registration_http, self._endpoints, timeout=max(1.0, self.ttl / 3))

    async def _readiness_status(self) -> Status:
        """The readiness status without this registration's own check (which only ever warns)."""
        if self._readiness is None:
            return "pass"
        answer = await self._readiness.answer()
        if answer.status != "warn":
            return answer.status
        checks = msgspec.json.decode(answer.body, type=ReadinessReport).checks
        others = {
            report.status for name, reports in checks.items() if name != CHECK_NAME for report in reports
        }
        return "warn" if "warn" in others else "pass"

    async def _round(self, etcd: EtcdClient) -> None:
        """One keepalive round: keep (or renew) the lease, then put or withdraw the keys as readiness says."""
        if self.lease is None or not await etcd.keepalive(self.lease):
            if self.lease is not None:
                logger.warning("etcd lease lost; registering again", extra={"key": self.key})
            self.lease, self.ttl = await etcd.grant(self.context.settings.etcd_lease_ttl_seconds)
            self._published = {}
        if self._revoked.is_set():  # revoked while the lease was granted: run() revokes the new one
            return
        readiness = await self._readiness_status()
        if readiness == "fail":
            if self._published:
                await self._hand_over_service_key(etcd, self.lease)
                await etcd.txn([], [delete(key) for key in self._published])
                self._published = {}
                logger.warning("withdrawn from etcd: readiness fails", extra={"key": self.key})
            self._set("withdrawn")
            return
        keys = self.keys(readiness)
        current = await etcd.get(self.key)
        if keys != self._published or current is None or current.lease != self.lease:
            await etcd.txn([], [put(key, value, self.lease) for key, value in keys.items()])
            self._published = keys
        service_value = json.loads(keys[self.key])
        del service_value["readiness"]
        await etcd.txn([absent(self.service_key)], [put(self.service_key, _json(service_value), self.lease)])
        if self.state != "registered":
            logger.info("registered in etcd", extra={"key": self.key, "lease": self.lease, "ttl": self.ttl})
        self._set("registered")

    async def _hand_over_service_key(self, etcd: EtcdClient, lease: str) -> None:
        """Move the service-level key, if it is on `lease` (ours), to another ready instance's lease (or delete it)."""
        for other in await etcd.get_prefix(self.service_key + "/"):
            if other.lease in {lease, "0"}:
                continue
            try:
                value = json.loads(other.value)
                value.pop("readiness", None)
                await etcd.txn(
                    [on_lease(self.service_key, lease)],
                    [put(self.service_key, _json(value), other.lease)],
                )
            except (EtcdError, ValueError, AttributeError):  # that instance's lease went meanwhile: the next
                continue
            return
        await etcd.txn([on_lease(self.service_key, lease)], [delete(self.service_key)])

    async def _wait_until_listening(self) -> None:
        while not self.context.listening.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.context.listening.wait(), timeout=30)
            if not self.context.listening.is_set():
                logger.warning("not registering in etcd yet: the server has not reported listening")

    async def run(self) -> None:
        """Register once the server listens, then keep alive until revoked; retry with backoff while etcd
        is unreachable."""
        await self._wait_until_listening()
        etcd = self._client()
        backoff = 0.5
        while not self._revoked.is_set():
            self._wake.clear()
            try:
                await self._round(etcd)
                delay, backoff = self.ttl / 3, 0.5
            except (EtcdError, KeyError, ValueError) as error:
                if self._revoked.is_set():  # the lease was revoked under this round
                    break
                self._set("retrying", str(error) if isinstance(error, EtcdError) else type(error).__name__)
                logger.warning("etcd registration failed; retrying in %gs", backoff, extra={"key": self.key})
                delay, backoff = backoff, min(backoff * 2, MAX_BACKOFF_SECONDS, max(1.0, self.ttl / 3))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=delay)
        if self.lease is not None:  # granted while a revoke was already under way
            await etcd.revoke(self.lease)

    async def revoke(self) -> None:
        """Remove the keys now (idempotent): called when draining starts, and again at shutdown."""
        if self._revoked.is_set():
            return
        self._revoked.set()
        self._wake.set()
        if self.lease is not None:
            started = time.perf_counter()
            etcd = self._client()
            with contextlib.suppress(EtcdError):
                await self._hand_over_service_key(etcd, self.lease)
            await etcd.revoke(self.lease)
            logger.info(
                "etcd lease revoked",
                extra={"key": self.key, "ms": round((time.perf_counter() - started) * 1000, 1)},
            )
        self.lease = None
        self._published = {}
        self._set("revoked")

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Keep the registration alive while the app runs; revoke it when draining starts or at the end."""
        if not self.enabled:
            logger.warning("ETCD_URL is empty: not registering in etcd")
            yield
            return
        task = asyncio.create_task(self.run(), name="etcd-registration")
        self.context.on_drain.append(lambda: asyncio.ensure_future(self.revoke()))
        try:
            yield
        finally:
            await self.revoke()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
