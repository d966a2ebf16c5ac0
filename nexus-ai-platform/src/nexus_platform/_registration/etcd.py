"""The few calls of etcd's v3 JSON gateway that registration needs (plain HTTP, its own small client).

Keys and values travel base64-encoded; int64 fields come back as JSON strings; empty fields are omitted.
"""

import base64
import contextlib
from collections.abc import Sequence
from typing import Any

import httpx

__all__ = ["EtcdClient", "EtcdError", "KeyValue", "absent", "delete", "on_lease", "put"]


class EtcdError(Exception):
    """etcd could not be reached, or answered with an error."""


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _prefix_end(prefix: str) -> str:
    """etcd's range_end for "every key starting with prefix" (ASCII prefixes: last byte plus one)."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


class KeyValue:
    __slots__ = ("key", "lease", "value")

    def __init__(self, raw: dict[str, Any]) -> None:
        self.key = base64.b64decode(raw["key"]).decode()
        self.value = base64.b64decode(raw.get("value", "")).decode()
        self.lease = raw.get("lease", "0")


class EtcdClient:
    """Endpoints are tried in order on each call; the first that answers wins."""

    def __init__(self, http: httpx.AsyncClient, endpoints: list[str], timeout: float) -> None:
        self._http = http
        self._endpoints = endpoints
        self._timeout = timeout

    async def call(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        failure = "no endpoint"
        for endpoint in self._endpoints:
            try:
                response = await self._http.post(f"{endpoint}/v3/{path}", json=body, timeout=self._timeout)
            except httpx.HTTPError as error:
                failure = type(error).__name__
                continue
            if response.is_success:
                answer: dict[str, Any] = response.json()
                return answer
            failure = f"HTTP {response.status_code}"
            if (
                response.status_code < 500
            ):  # etcd said no (e.g. an unknown lease): another member says the same
                break
        raise EtcdError(failure)

    async def grant(self, ttl: int) -> tuple[str, int]:
        answer = await self.call("lease/grant", {"TTL": ttl})
        return answer["ID"], int(answer["TTL"])

    async def keepalive(self, lease: str) -> bool:
        """True while the lease lives; etcd answers 200 without TTL for an expired or revoked lease."""
        answer = await self.call("lease/keepalive", {"ID": lease})
        return "TTL" in answer.get("result", {})

    async def revoke(self, lease: str) -> None:
        """Deletes every key on the lease."""
        with contextlib.suppress(EtcdError):  # an unknown lease answers 404: nothing left to remove
            await self.call("lease/revoke", {"ID": lease})

    async def get(self, key: str) -> KeyValue | None:
        kvs = (await self.call("kv/range", {"key": _b64(key)})).get("kvs", [])
        return KeyValue(kvs[0]) if kvs else None

    async def get_prefix(self, prefix: str) -> list[KeyValue]:
        body = {"key": _b64(prefix), "range_end": _b64(_prefix_end(prefix))}
        return [KeyValue(raw) for raw in (await self.call("kv/range", body)).get("kvs", [])]

    async def txn(
        self,
        compare: list[dict[str, Any]],
        success: list[dict[str, Any]],
        failure: Sequence[dict[str, Any]] = (),
    ) -> bool:
        """One atomic transaction; True when the comparisons held (and `success` ran)."""
        answer = await self.call("kv/txn", {"compare": compare, "success": success, "failure": list(failure)})
        return bool(answer.get("succeeded"))


def put(key: str, value: str, lease: str) -> dict[str, Any]:
    """A put operation for `EtcdClient.txn`."""
    return {"request_put": {"key": _b64(key), "value": _b64(value), "lease": lease}}


def delete(key: str) -> dict[str, Any]:
    """A delete operation for `EtcdClient.txn`."""
    return {"request_delete_range": {"key": _b64(key)}}


def absent(key: str) -> dict[str, Any]:
    """A comparison for `EtcdClient.txn`: the key does not exist."""
    return {"key": _b64(key), "target": "CREATE", "result": "EQUAL", "create_revision": "0"}


def on_lease(key: str, lease: str) -> dict[str, Any]:
    """A comparison for `EtcdClient.txn`: the key exists and is attached to `lease`."""
    return {"key": _b64(key), "target": "LEASE", "result": "EQUAL", "lease": lease}
