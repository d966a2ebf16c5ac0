"""The read side of service registration: what is registered in etcd, and its changes as they happen.
Standard library only, so the gateway team can copy this file as it is.

    from registry import list_instances, watch
    for entry in list_instances("http://etcd:2379"):
        print(entry["name"], entry["base_url"], entry["readiness"], entry["instance_id"])

or `nexus-template services --etcd http://etcd:2379 [--watch]`. Under the prefix each instance of a service
keeps `<prefix><name>/<instance_id>` ({"name", "base_url", "metadata_url", "version", "capabilities",
"instance_id", "readiness"}) while it is ready; `<prefix><name>` is the service-level key of the original
layout (one ready instance's value, without readiness). Entries carry their `key`, `lease` and `kind`
("instance" or "service"). Values that are not JSON objects, and deeper keys, are skipped.
"""

from __future__ import annotations

import base64
import contextlib
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

__all__ = [
    "DEFAULT_PREFIX",
    "Change",
    "Snapshot",
    "follow",
    "list_instances",
    "list_services",
    "prefix_range_end",
    "read",
    "watch",
]

DEFAULT_PREFIX = "/nexus/services/"
# etcd sends nothing while nothing changes: a watch stream idle this long is re-opened (losslessly)
IDLE_REOPEN_SECONDS = 60.0


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def prefix_range_end(prefix: bytes) -> bytes:
    """etcd's range_end for "every key starting with prefix": the prefix with its last byte plus one."""
    trimmed = prefix.rstrip(b"\xff")
    if not trimmed:
        return b"\x00"  # every key
    return trimmed[:-1] + bytes([trimmed[-1] + 1])


def _request(etcd_url: str, path: str, body: dict[str, Any]) -> urllib.request.Request:
    if not etcd_url.startswith(("http://", "https://")):
        raise ValueError(f"etcd URL must start with http:// or https:// (got {etcd_url!r})")
    return urllib.request.Request(  # noqa: S310 - the scheme is checked above
        f"{etcd_url.rstrip('/')}/v3/{path}",
        data=json.dumps(body).encode(),
        headers={"content-type": "application/json"},
        method="POST",
    )


def _range(prefix: str) -> dict[str, str]:
    return {"key": _b64(prefix.encode()), "range_end": _b64(prefix_range_end(prefix.encode()))}


def _entry(kv: dict[str, Any], prefix: str) -> dict[str, Any] | None:
    """The registration a key-value holds, or None when it is not one."""
    key = base64.b64decode(kv["key"]).decode(errors="replace")
    parts = key[len(prefix) :].split("/")
    if len(parts) > 2 or not all(parts):
        return None
    try:
        value = json.loads(base64.b64decode(kv.get("value", "")))
    except ValueError:
        return None
    if not isinstance(value, dict):
        return None
    kind = "instance" if len(parts) == 2 else "service"
    return {**value, "key": key, "lease": kv.get("lease", "0"), "kind": kind}


@dataclass(frozen=True)
class Snapshot:
    revision: int  # etcd's revision at the read: watch from revision + 1 to miss nothing
    entries: list[dict[str, Any]]  # sorted by key


@dataclass(frozen=True)
class Change:
    type: str  # "put" or "delete"
    key: str
    revision: int
    entry: dict[str, Any] | None  # the new registration (None for a delete)


def read(etcd_url: str, prefix: str = DEFAULT_PREFIX, timeout: float = 5.0) -> Snapshot:
    """Every registration under `prefix`. Raises OSError when etcd cannot be reached."""
    with urllib.request.urlopen(_request(etcd_url, "kv/range", _range(prefix)), timeout=timeout) as response:  # noqa: S310
        answer = json.load(response)
    entries = [entry for kv in answer.get("kvs", []) if (entry := _entry(kv, prefix))]  # no `kvs`: none
    return Snapshot(int(answer["header"]["revision"]), sorted(entries, key=lambda entry: entry["key"]))


def list_instances(etcd_url: str, prefix: str = DEFAULT_PREFIX, timeout: float = 5.0) -> list[dict[str, Any]]:
    """The ready instances of every service (one key each), sorted by key."""
    return [entry for entry in read(etcd_url, prefix, timeout).entries if entry["kind"] == "instance"]


def list_services(etcd_url: str, prefix: str = DEFAULT_PREFIX, timeout: float = 5.0) -> list[dict[str, Any]]:
    """The service-level keys of the original layout (one per service), sorted by key."""
    return [entry for entry in read(etcd_url, prefix, timeout).entries if entry["kind"] == "service"]


def watch(
    etcd_url: str, prefix: str = DEFAULT_PREFIX, start_revision: int = 0, timeout: float = 5.0
) -> Iterator[Change]:
    """The changes under `prefix` from `start_revision` on, through etcd's JSON gateway watch stream
    (POST /v3/watch: one JSON message per line). The stream is re-opened from the next revision when it
    ends or stays idle, so no change is lost while etcd keeps its history; raises OSError when etcd cannot
    be reached, LookupError when the revision was compacted (read again, then watch from there)."""
    next_revision = start_revision
    while True:
        body = {"create_request": {**_range(prefix), "start_revision": str(next_revision)}}
        try:
            with urllib.request.urlopen(  # noqa: S310
                _request(etcd_url, "watch", body), timeout=IDLE_REOPEN_SECONDS
            ) as stream:
                for line in stream:
                    result = json.loads(line).get("result", {})
                    if result.get("canceled") or result.get("compact_revision"):
                        raise LookupError(f"revision {next_revision} is compacted; read the registry again")
                    for event in result.get("events", []):
                        kv = event["kv"]
                        revision = int(kv["mod_revision"])
                        next_revision = revision + 1
                        key = base64.b64decode(kv["key"]).decode(errors="replace")
                        if event.get("type") == "DELETE":  # PUT is etcd's default: JSON omits it
                            yield Change("delete", key, revision, None)
                        elif entry := _entry(kv, prefix):
                            yield Change("put", key, revision, entry)
        except TimeoutError:
            continue  # idle: open again from the next revision
        except urllib.error.URLError as error:
            if isinstance(error.reason, TimeoutError):
                continue
            raise


def follow(
    etcd_url: str, prefix: str = DEFAULT_PREFIX, retry_seconds: float = 1.0
) -> Iterator[Snapshot | Change]:
    """A snapshot, then its changes, for ever: after etcd was unreachable or the history compacted, a fresh
    snapshot (then its changes) follows. Raises OSError only when the very first read fails."""
    snapshot = read(etcd_url, prefix)
    while True:
        yield snapshot
        with contextlib.suppress(OSError, LookupError):  # etcd went away, or its history was compacted
            yield from watch(etcd_url, prefix, snapshot.revision + 1)
        while True:
            time.sleep(retry_seconds)
            try:
                snapshot = read(etcd_url, prefix)
                break
            except OSError:
                continue
