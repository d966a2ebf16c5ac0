"""Self-registration in etcd, for discovery across hosts and routing by a gateway.

Each instance keeps its own keys on its own lease (ETCD_LEASE_TTL_SECONDS, kept alive every TTL/3):

- `<ETCD_KEY_PREFIX><name>/<instance_id>`: {"name", "base_url", "metadata_url", "version", "capabilities",
  "instance_id", "readiness"};
- with ETCD_TRAEFIK_ROOT set, the keys of Traefik's KV provider: the instance's own router (the service's
  rule, identical for every instance, on ETCD_TRAEFIK_ENTRYPOINTS only, with ETCD_TRAEFIK_MIDDLEWARES and
  ETCD_TRAEFIK_TLS), its strip-prefix middleware, and its server in the service's load balancer. No
  Traefik key is shared between instances, so no instance's departure removes another's route.

Every round also verifies what others could have written (etcd open, or someone's credentials leaked): it
reads back everything under its own prefixes, the service key and the service's instance keys and load
balancer in one snapshot, rewrites its own keys where they differ or are off its lease, and deletes what is
not a live instance's (a WARNING names each key); a service key on no live instance's lease is replaced.

The keys exist only while the instance is ready: every round (TTL/3, and at once when a /readyz request
sees the readiness status change) evaluates readiness; `fail` deletes them, `pass`/`warn` puts them back.
Registration starts once the server listens (`python -m app`), never before it can answer.

The service-level key `<ETCD_KEY_PREFIX><name>` of the original layout (one key per service) is kept for
the gateways that read it: it holds one ready instance's value (less `readiness`), on that instance's lease.
A ready instance creates it when it is absent; an instance that withdraws or stops hands it to another
live instance's lease first, so it stays while any instance is ready.

etcd unreachable: keep serving, retry with backoff, report `warn`. A keepalive answered without TTL means
the lease is gone: register again. SIGTERM revokes the lease at once (the keys disappear before the
service stops serving); after a crash the TTL removes them.
"""

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import msgspec

from nexus_platform._context import NexusContext
from nexus_platform._probes.metadata import RegistrationInfo, RegistrationState
from nexus_platform._probes.readiness import CheckResult, Readiness, ReadinessReport, Status
from nexus_platform._registration.config import etcd_credentials, etcd_tls_context
from nexus_platform._registration.etcd import (
    EtcdClient,
    EtcdError,
    KeyValue,
    absent,
    delete,
    delete_prefix,
    on_lease,
    prefix_range,
    put,
    unchanged,
)

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


def traefik_keys(
    root: str,
    service: str,
    instance: str,
    base_url: str,
    entrypoints: list[str],
    middlewares: Sequence[str] = (),
    tls: bool = False,
) -> dict[str, str]:
    """Traefik's KV-provider keys for one instance: requests to /<service>/… on `entrypoints` reach
    <base_url>/…, through the strip-prefix middleware and then `middlewares`."""
    router = router_name(service, instance)
    keys = {
        f"{root}/http/routers/{router}/rule": f"PathPrefix(`/{service}/`)",
        f"{root}/http/routers/{router}/service": service,
        f"{root}/http/middlewares/{router}/stripPrefix/prefixes/0": f"/{service}",
        f"{root}/http/services/{service}/loadBalancer/servers/{instance}/url": base_url,
    }
    keys |= {f"{root}/http/routers/{router}/entryPoints/{i}": name for i, name in enumerate(entrypoints)}
    keys |= {
        f"{root}/http/routers/{router}/middlewares/{i}": name for i, name in enumerate([router, *middlewares])
    }
    if tls:
        keys[f"{root}/http/routers/{router}/tls"] = "true"
    return keys


def router_name(service: str, instance: str) -> str:
    """The instance's router (and middleware) name. "_" never occurs in a service name, so the names of
    one service share a prefix no other service's names start with (an etcd role grants by prefix)."""
    return f"{service}_{instance}"


def _holds(kv: KeyValue | None, value: str, lease: str) -> bool:
    return kv is not None and kv.value == value and kv.lease == lease


def _live_instances(found: dict[str, KeyValue], service_key: str) -> dict[str, str]:
    """{instance id: lease} of the instance keys among `found` that a running instance wrote: on a lease,
    one path segment below the service key, a JSON object naming that instance."""
    instances = {}
    for key, kv in found.items():
        instance = key.removeprefix(service_key + "/")
        if instance == key or "/" in instance or kv.lease == "0":
            continue
        try:
            value = json.loads(kv.value)
        except ValueError:
            continue
        if isinstance(value, dict) and value.get("instance_id") == instance:
            instances[instance] = kv.lease
    return instances


def _names(setting: str) -> list[str]:
    return [name.strip() for name in setting.split(",") if name.strip()]


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
        self._revoking: asyncio.Future[None] | None = None  # the one revoke, which every caller waits for
        self._endpoints = [url.strip().rstrip("/") for url in settings.etcd_url.split(",") if url.strip()]
        self._tls = etcd_tls_context(settings)  # checked at start-up: a bad file stops it there
        # the key prefixes that hold this instance's keys alone: anything else found under them is removed
        self.owned = [self.key + "/"]
        # the service's Traefik load balancer: only the servers of the service's live instances belong there
        self.balancer = ""
        if root := settings.etcd_traefik_root:
            router = router_name(settings.service_name, context.instance_id)
            self.owned += [
                f"{root}/http/routers/{router}/",
                f"{root}/http/middlewares/{router}/",
                f"{root}/http/services/{settings.service_name}/loadBalancer/servers/{context.instance_id}/",
            ]
            self.balancer = f"{root}/http/services/{settings.service_name}/"

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
                settings.etcd_traefik_root,
                settings.service_name,
                self.context.instance_id,
                base,
                _names(settings.etcd_traefik_entrypoints),
                _names(settings.etcd_traefik_middlewares),
                settings.etcd_traefik_tls,
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
        return EtcdClient(
            self.context.own_client("registration", self._tls),
            self._endpoints,
            timeout=max(1.0, self.ttl / 3),
            credentials=etcd_credentials(self.context.settings),
        )

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
                await etcd.txn([], [delete(self.key)] + [delete_prefix(prefix) for prefix in self.owned])
                self._published = {}
                logger.warning("withdrawn from etcd: readiness fails", extra={"key": self.key})
            self._set("withdrawn")
            return
        await self._publish(etcd, self.keys(readiness))
        if self.state != "registered":
            logger.info("registered in etcd", extra={"key": self.key, "lease": self.lease, "ttl": self.ttl})
        self._set("registered")

    async def _publish(self, etcd: EtcdClient, intent: dict[str, str]) -> None:
        """Read back every key this instance publishes, and the service's keys around them, in one snapshot;
        rewrite what differs from `intent` (or is off our lease), and remove what is not ours or not a live
        instance's. A key that was right before and is not now was changed by someone else: a WARNING names
        it."""
        assert self.lease is not None
        reads = [(self.key, ""), (self.service_key, ""), prefix_range(self.service_key + "/")]
        reads += [prefix_range(prefix) for prefix in [*self.owned, self.balancer] if prefix]
        found = {kv.key: kv for kv in await etcd.ranges(reads)}
        ours = []
        for key, value in intent.items():
            if _holds(found.get(key), value, self.lease):
                continue
            if self._published.get(key) == value:  # this instance had put it so: someone changed it since
                logger.warning("etcd key %r was changed or deleted by someone else: rewritten", key)
            ours.append(put(key, value, self.lease))
        if ours:  # unconditional: these keys are this instance's alone
            await etcd.txn([], ours)
        self._published = intent
        instances = _live_instances(found, self.service_key)
        checks, fixes = [], []
        for key, kv in found.items():
            if key not in intent and key != self.service_key and not self._belongs(key, kv, instances):
                logger.warning("etcd key %r is not a live instance's: deleted", key)
                checks.append(unchanged(key, kv.mod_revision))
                fixes.append(delete(key))
        fields = json.loads(intent[self.key])
        del fields["readiness"]
        service_value = _json(fields)
        held = found.get(self.service_key)
        if held is None:
            checks.append(absent(self.service_key))
            fixes.append(put(self.service_key, service_value, self.lease))
        elif held.lease == self.lease and held.value != service_value:
            logger.warning("etcd key %r differs from this instance's value: rewritten", self.service_key)
            checks.append(unchanged(self.service_key, held.mod_revision))
            fixes.append(put(self.service_key, service_value, self.lease))
        elif held.lease != self.lease and held.lease not in instances.values():
            logger.warning(
                "etcd key %r is on no live instance's lease (lease %s): replaced",
                self.service_key,
                held.lease,
            )
            checks.append(unchanged(self.service_key, held.mod_revision))
            fixes.append(put(self.service_key, service_value, self.lease))
        if fixes:  # only if nothing changed since the read: otherwise the next round decides again
            await etcd.txn(checks, fixes)

    def _belongs(self, key: str, kv: KeyValue, instances: dict[str, str]) -> bool:
        """Whether a key found around this instance's own is legitimate: another live instance's key, or
        its server in the service's load balancer on that instance's lease."""
        if key.startswith(self.service_key + "/"):
            return instances.get(key.removeprefix(self.service_key + "/")) == kv.lease
        if any(key.startswith(prefix) for prefix in self.owned):
            return False
        # the balancer: <root>/http/services/<name>/loadBalancer/servers/<instance>/url
        instance, _, rest = key.removeprefix(self.balancer + "loadBalancer/servers/").partition("/")
        return (
            key.startswith(self.balancer + "loadBalancer/servers/")
            and rest == "url"
            and (instances.get(instance) == kv.lease)
        )

    async def _hand_over_service_key(self, etcd: EtcdClient, lease: str) -> None:
        """Move the service-level key, if it is on `lease` (ours), to another live instance's lease (or
        delete it)."""
        found = {kv.key: kv for kv in await etcd.get_prefix(self.service_key + "/")}
        for instance, other_lease in _live_instances(found, self.service_key).items():
            if other_lease == lease:
                continue
            value = json.loads(found[f"{self.service_key}/{instance}"].value)
            value.pop("readiness", None)
            try:
                await etcd.txn(
                    [on_lease(self.service_key, lease)],
                    [put(self.service_key, _json(value), other_lease)],
                )
            except EtcdError:  # that instance's lease went meanwhile: the next one
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
            except Exception as error:  # nothing may end the registration silently
                if self._revoked.is_set():  # the lease was revoked under this round
                    break
                expected = isinstance(error, (EtcdError, KeyError, ValueError))
                self._set("retrying", str(error) if isinstance(error, EtcdError) else type(error).__name__)
                logger.warning(
                    "etcd registration failed; retrying in %gs",
                    backoff,
                    extra={"key": self.key},
                    exc_info=not expected,  # an unforeseen failure: its traceback, to find it
                )
                delay, backoff = backoff, min(backoff * 2, MAX_BACKOFF_SECONDS, max(1.0, self.ttl / 3))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=delay)
        if self.lease is not None:  # granted while a revoke was already under way
            await etcd.revoke(self.lease)

    async def revoke(self) -> None:
        """Remove the keys now: called when draining starts, and again at shutdown. Once: a later call waits
        for the first to finish (the shutdown's returned at once while the drain's was still revoking, and
        the process exited with its keys registered)."""
        if self._revoking is None:
            self._revoked.set()
            self._wake.set()
            self._revoking = asyncio.ensure_future(self._revoke_lease())
        await asyncio.shield(self._revoking)

    async def _revoke_lease(self) -> None:
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
