"""The read side of service registration: list what is registered in etcd. Standard library only, so the
gateway team can copy this file as it is.

    from registry import list_services
    for entry in list_services("http://etcd:2379"):
        print(entry["name"], entry["base_url"], entry["metadata_url"])

or `nexus-template services --etcd http://etcd:2379`. Each entry is the JSON value a service wrote
({"name", "base_url", "metadata_url", "version", "instance_id", "capabilities"}) plus `key` and `lease`.
Entries whose value is not JSON are skipped: the prefix is for registrations only.
"""

from __future__ import annotations

import base64
import json
import urllib.request
from typing import Any

DEFAULT_PREFIX = "/nexus/services/"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def prefix_range_end(prefix: bytes) -> bytes:
    """etcd's range_end for "every key starting with prefix": the prefix with its last byte plus one."""
    trimmed = prefix.rstrip(b"\xff")
    if not trimmed:
        return b"\x00"  # every key
    return trimmed[:-1] + bytes([trimmed[-1] + 1])


def list_services(etcd_url: str, prefix: str = DEFAULT_PREFIX, timeout: float = 5.0) -> list[dict[str, Any]]:
    """Every registration under `prefix`, sorted by key. Raises OSError when etcd cannot be reached."""
    if not etcd_url.startswith(("http://", "https://")):
        raise ValueError(f"etcd URL must start with http:// or https:// (got {etcd_url!r})")
    body = json.dumps({"key": _b64(prefix.encode()), "range_end": _b64(prefix_range_end(prefix.encode()))})
    request = urllib.request.Request(  # noqa: S310 - the scheme is checked above
        f"{etcd_url.rstrip('/')}/v3/kv/range",
        data=body.encode(),
        headers={"content-type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
        answer = json.load(response)
    entries = []
    for kv in answer.get("kvs", []):  # etcd omits `kvs` when nothing matches
        try:
            value = json.loads(base64.b64decode(kv.get("value", "")))
        except ValueError:
            continue
        if isinstance(value, dict):
            entries.append(
                {**value, "key": base64.b64decode(kv["key"]).decode(), "lease": kv.get("lease", "0")}
            )
    return sorted(entries, key=lambda entry: entry["key"])
