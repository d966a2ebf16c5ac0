"""Which instances exist: the registrations in etcd, followed through etcd's watch, or the static list.

etcd: the gateway reads every key under ETCD_KEY_PREFIX in one range, keeps the instance keys that pass the
read side's checks (docs/registration.md, "Reading the registry safely"; nexus_template/registry.py is the
standard-library original), then follows the prefix through the JSON gateway's watch stream (`POST
/v3/watch`, one JSON message per line) and reads the prefix again at each change, so a registration shows
within milliseconds and a withdrawn one (drain: the lease is revoked at SIGTERM; death: the lease expires
after its TTL) disappears as fast. A stream idle for a minute is re-opened from the next revision; after
etcd was unreachable or compacted its history the prefix is read afresh. The credentials, TLS files and
token renewal are the registration's own (nexus_platform._registration).

An instance key is trusted only when: it is `<prefix><name>/<instance_id>`; its lease is live and was
granted for at most 3600 s (a lease-less key is never reclaimed); its value is the registrar's JSON with
`name` and `instance_id` equal to the key's parts, `readiness` pass or warn and an http(s) `base_url`; and
no other instance key shares its lease. The service-level key of the original layout is a hint naming an
instance key, which is read anyway: it is never routed to.
"""

import asyncio
import json
import logging
import ssl
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import NamedTuple

import httpx

from nexus_platform._registration.etcd import EtcdClient, EtcdError, KeyValue, _b64, prefix_range

__all__ = ["EtcdDiscovery", "Registration", "registrations"]

logger = logging.getLogger("nexus.gateway")

# the longest lease a registrar asks for (ETCD_LEASE_TTL_SECONDS accepts 2 to 3600)
MAX_LEASE_TTL_SECONDS = 3600
# etcd sends nothing while nothing changes: a stream silent this long is re-opened from the next revision
IDLE_REOPEN_SECONDS = 60.0
RETRY_SECONDS = 1.0
_STRINGS = ("name", "base_url", "metadata_url", "version", "instance_id")


class Registration(NamedTuple):
    """One ready instance, as its etcd key says."""

    key: str
    name: str
    instance_id: str
    base_url: str


def _value(text: str, name: str, instance_id: str) -> str | None:
    """The base URL of a registrar's value for this key, or None when the value is not one."""
    try:
        value = json.loads(text, parse_constant=lambda _: None)
    except ValueError:
        return None
    if not isinstance(value, dict) or not all(
        isinstance(value.get(field), str) and value[field].isprintable() and value[field]
        for field in _STRINGS
    ):
        return None
    base_url = str(value["base_url"]).rstrip("/")
    try:  # "http://[::1" and "http://host:abc" raise here, never later in a routing loop
        parts = urllib.parse.urlsplit(base_url)
        parts.port  # noqa: B018 - the check is the access
    except ValueError:
        return None
    if (
        value["name"] != name
        or value["instance_id"] != instance_id
        or value.get("readiness") not in ("pass", "warn")
        or parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.username
        or value["metadata_url"] != base_url + "/v1/metadata"
    ):
        return None
    return base_url


def registrations(
    kvs: list[KeyValue], prefix: str, granted: dict[str, int | None]
) -> dict[str, Registration]:
    """The trusted instance keys among `kvs` (one read of the prefix), by key. `granted`: each lease's
    granted TTL, None when it is not live."""
    found: dict[str, Registration] = {}
    leases: dict[str, list[str]] = {}
    for kv in kvs:
        parts = kv.key[len(prefix) :].split("/")
        if len(parts) != 2 or not all(parts) or not kv.key.startswith(prefix):
            continue  # a service-level key (a hint) or something no registrar writes
        ttl = granted.get(kv.lease)
        if kv.lease == "0" or ttl is None or ttl > MAX_LEASE_TTL_SECONDS:
            continue
        base_url = _value(kv.value, *parts)
        if base_url is None:
            continue
        found[kv.key] = Registration(kv.key, parts[0], parts[1], base_url)
        leases.setdefault(kv.lease, []).append(kv.key)
    for keys in leases.values():
        if len(keys) > 1:  # no registrar does this: a key riding on an instance's lease, both suspect
            for key in keys:
                del found[key]
    return found


class _Etcd(EtcdClient):
    """The registration's etcd client, plus the watch stream."""

    async def lease_ttl(self, lease: str) -> int | None:
        """The granted TTL of a live lease, None when it is not live (`/v3/lease/timetolive` without the
        keys: no permission on them is needed)."""
        answer = await self.call("lease/timetolive", {"ID": lease})
        return int(answer.get("grantedTTL", "0")) if int(answer.get("TTL", "-1")) >= 0 else None

    async def read(self, prefix: str) -> tuple[int, list[KeyValue]]:
        key, end = prefix_range(prefix)
        answer = await self.call("kv/range", {"key": _b64(key), "range_end": _b64(end)})
        return int(answer["header"]["revision"]), [KeyValue(raw) for raw in answer.get("kvs", [])]

    async def changes(self, prefix: str, start: int) -> AsyncIterator[int]:
        """The revision of each batch of changes under `prefix` from revision `start`, for ever; EtcdError
        when etcd ends the watch (compaction, permissions) or cannot be reached."""
        key, end = prefix_range(prefix)
        while True:
            await self.call("kv/range", {"key": _b64(key), "limit": 1})  # authenticates when needed
            body = {
                "create_request": {"key": _b64(key), "range_end": _b64(end), "start_revision": str(start)}
            }
            headers = {"authorization": self._token} if self._token else {}
            timeout = httpx.Timeout(self._timeout, read=IDLE_REOPEN_SECONDS)
            try:
                async with self._http.stream(
                    "POST", f"{self._endpoints[0]}/v3/watch", json=body, headers=headers, timeout=timeout
                ) as stream:
                    if not stream.is_success:
                        raise EtcdError(f"watch answered HTTP {stream.status_code}")
                    async for line in stream.aiter_lines():
                        message = json.loads(line) if line.strip() else {}
                        result = message.get("result", {})
                        if "error" in message or result.get("canceled"):
                            raise EtcdError("etcd ended the watch")
                        if result.get("compact_revision"):
                            raise EtcdError("the watched revision is compacted")
                        events = result.get("events", [])
                        if events:
                            start = max(int(event["kv"]["mod_revision"]) for event in events) + 1
                            yield start - 1
            except httpx.ReadTimeout:
                continue  # idle: re-open from the next revision, losing nothing
            except (httpx.HTTPError, ssl.SSLError, ValueError, KeyError) as error:
                raise EtcdError(type(error).__name__) from None


class EtcdDiscovery:
    """Calls `found(registrations)` with every trusted instance key after each change (and at start)."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        endpoints: list[str],
        prefix: str,
        credentials: tuple[str, str] | None,
        found: Callable[[dict[str, Registration]], Awaitable[None]],
    ) -> None:
        self._etcd = _Etcd(http, endpoints, timeout=5.0, credentials=credentials)
        self._prefix = prefix
        self._found = found
        self._granted: dict[str, int | None] = {}
        self.connected = False

    async def _refresh(self) -> int:
        revision, kvs = await self._etcd.read(self._prefix)
        leases = {kv.lease for kv in kvs if kv.lease != "0"}
        # a lease asked about before and still holding keys is live: etcd deletes its keys when it ends
        self._granted = {lease: ttl for lease, ttl in self._granted.items() if lease in leases}
        for lease in leases - self._granted.keys():
            self._granted[lease] = await self._etcd.lease_ttl(lease)
        await self._found(registrations(kvs, self._prefix, self._granted))
        return revision

    async def run(self) -> None:
        """Follow etcd until cancelled; while it is unreachable the last routing table stays."""
        while True:
            try:
                revision = await self._refresh()
                if not self.connected:
                    logger.info("following the registrations in etcd", extra={"prefix": self._prefix})
                self.connected = True
                async for _ in self._etcd.changes(self._prefix, revision + 1):
                    await self._refresh()
            except (EtcdError, httpx.HTTPError, ssl.SSLError, ValueError, KeyError) as error:
                if self.connected:
                    logger.warning("etcd unreachable (%s): routing on the last registrations read", error)
                self.connected = False
                self._granted = {}  # etcd may have lost leases meanwhile: ask again
            except Exception:  # a routing loop never dies: anything else is logged and tried again
                logger.exception("following etcd failed: routing on the last registrations read")
                self.connected = False
                self._granted = {}
            await asyncio.sleep(RETRY_SECONDS)
