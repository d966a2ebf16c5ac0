"""The few calls of etcd's v3 JSON gateway that registration needs (HTTP or HTTPS, its own small client).

Keys and values travel base64-encoded; int64 fields come back as JSON strings; empty fields are omitted.

With credentials (ETCD_USERNAME, ETCD_PASSWORD) the client authenticates through `/v3/auth/authenticate`
and sends the token etcd returns, raw, in the `Authorization` header (etcd reads the header as a token: a
Basic or Bearer header is refused). etcd forgets tokens (`--auth-token-ttl`, 5 minutes by default, and on
restart) and then answers 401 "invalid auth token": the client authenticates again and repeats the call
once. The password never appears in an error.
"""

import base64
import contextlib
import ssl
from collections.abc import Sequence
from typing import Any

import httpx

__all__ = [
    "EtcdClient",
    "EtcdError",
    "KeyValue",
    "absent",
    "delete",
    "delete_prefix",
    "on_lease",
    "prefix_range",
    "put",
    "unchanged",
]


class EtcdError(Exception):
    """etcd could not be reached, or answered with an error."""


def _b64(text: str) -> str:
    # surrogateescape: a key read back that is not UTF-8 (anyone with write access can make one) is
    # written or deleted as the very bytes it was
    return base64.b64encode(text.encode(errors="surrogateescape")).decode()


def _prefix_end(prefix: str) -> str:
    """etcd's range_end for "every key starting with prefix" (ASCII prefixes: last byte plus one)."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


def prefix_range(prefix: str) -> tuple[str, str]:
    """(key, range_end) of every key starting with `prefix`, for `EtcdClient.ranges`."""
    return prefix, _prefix_end(prefix)


class KeyValue:
    __slots__ = ("key", "lease", "mod_revision", "value")

    def __init__(self, raw: dict[str, Any]) -> None:
        self.key = base64.b64decode(raw["key"]).decode(errors="surrogateescape")
        self.value = base64.b64decode(raw.get("value", "")).decode(errors="replace")
        self.lease = str(raw.get("lease", "0"))
        self.mod_revision = str(raw.get("mod_revision", "0"))


# etcd's answer to a token it does not know (expired, or issued before a restart): authenticate again
_INVALID_TOKEN = 401


class EtcdClient:
    """Endpoints are tried in order on each call; the first that answers wins."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        endpoints: list[str],
        timeout: float,
        credentials: tuple[str, str] | None = None,
    ) -> None:
        self._http = http
        self._endpoints = endpoints
        self._timeout = timeout
        self._credentials = credentials
        self._token: str | None = None

    async def call(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        if self._credentials is not None and self._token is None:
            await self._authenticate()
        status, answer, failure = await self._post(path, body)
        if status == _INVALID_TOKEN and self._credentials is not None:
            await self._authenticate()
            status, answer, failure = await self._post(path, body)
        if answer is None:
            raise EtcdError(failure)
        return answer

    async def _authenticate(self) -> None:
        assert self._credentials is not None
        self._token = None
        name, password = self._credentials
        _status, answer, failure = await self._post("auth/authenticate", {"name": name, "password": password})
        if answer is None:
            raise EtcdError(f"authentication as {name!r} failed ({failure})")
        self._token = str(answer.get("token", ""))

    async def _post(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any] | None, str]:
        """(status, answer or None, failure) of the first endpoint that answers."""
        headers = {"authorization": self._token} if self._token else {}
        failure, status = "no endpoint", 0
        for endpoint in self._endpoints:
            try:
                response = await self._http.post(
                    f"{endpoint}/v3/{path}", json=body, headers=headers, timeout=self._timeout
                )
            # a client certificate etcd refuses can surface as the raw ssl.SSLError of its alert
            except (httpx.HTTPError, ssl.SSLError) as error:
                failure = type(error).__name__
                continue
            status = response.status_code
            if response.is_success:
                answer: dict[str, Any] = response.json()
                return status, answer, ""
            failure = f"HTTP {status}"
            if status < 500:  # etcd said no (e.g. an unknown lease): another member says the same
                break
        return status, None, failure

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

    async def get_prefix(self, prefix: str) -> list[KeyValue]:
        body = {"key": _b64(prefix), "range_end": _b64(_prefix_end(prefix))}
        return [KeyValue(raw) for raw in (await self.call("kv/range", body)).get("kvs", [])]

    async def ranges(self, ranges: Sequence[tuple[str, str]]) -> list[KeyValue]:
        """Every key in each (key, range_end) range (range_end "" for the key alone), read in one
        transaction: one snapshot of etcd, one round trip."""
        reads = [
            {"request_range": {"key": _b64(key), **({"range_end": _b64(end)} if end else {})}}
            for key, end in ranges
        ]
        answer = await self.call("kv/txn", {"compare": [], "success": reads})
        return [
            KeyValue(raw)
            for response in answer.get("responses", [])
            for raw in response.get("response_range", {}).get("kvs", [])
        ]

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


def delete_prefix(prefix: str) -> dict[str, Any]:
    """A delete operation for `EtcdClient.txn`: every key starting with `prefix`."""
    return {"request_delete_range": {"key": _b64(prefix), "range_end": _b64(_prefix_end(prefix))}}


def absent(key: str) -> dict[str, Any]:
    """A comparison for `EtcdClient.txn`: the key does not exist."""
    return {"key": _b64(key), "target": "CREATE", "result": "EQUAL", "create_revision": "0"}


def unchanged(key: str, mod_revision: str) -> dict[str, Any]:
    """A comparison for `EtcdClient.txn`: the key was not written since it was read at `mod_revision`."""
    return {"key": _b64(key), "target": "MOD", "result": "EQUAL", "mod_revision": mod_revision}


def on_lease(key: str, lease: str) -> dict[str, Any]:
    """A comparison for `EtcdClient.txn`: the key exists and is attached to `lease`."""
    return {"key": _b64(key), "target": "LEASE", "result": "EQUAL", "lease": lease}
