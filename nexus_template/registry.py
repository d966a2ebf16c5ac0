"""The read side of service registration: what is registered in etcd, and its changes as they happen.
Standard library only, so the gateway team can copy this file as it is.

    from registry import Credentials, list_instances, follow
    credentials = Credentials.from_environment()  # ETCD_USERNAME, ETCD_PASSWORD, ETCD_CA_FILE, ...
    for entry in list_instances("https://etcd:2379", credentials=credentials):
        print(entry["name"], entry["base_url"], entry["readiness"], entry["instance_id"])

or `nexus-template services --etcd http://etcd:2379 [--watch]`. Under the prefix each instance of a service
keeps `<prefix><name>/<instance_id>` ({"name", "base_url", "metadata_url", "version", "capabilities",
"instance_id", "readiness"}) on its own lease while it is ready; `<prefix><name>` is the service-level key
of the original layout (one ready instance's value, without readiness, on that instance's lease).

Nothing is trusted because it is in etcd: anyone who can write there can write a key. An entry is listed
only when its value parses strictly (the exact types the registrar writes, `name` and `instance_id` equal
to the key's parts, `metadata_url` = `base_url` + /v1/metadata, no control characters), its lease is live
(`/v3/lease/timetolive`) with a TTL a registrar could have asked for, no other instance key shares that
lease, and, for a service-level key, it repeats a listed instance key on that instance's lease (so it is
a hint that names an instance, never an address of its own). Everything else under the prefix is a
suspect: {"key", "lease", "kind": "suspect", "reason", "value"}, listed apart and never routed to.
Entries carry their `key`, `lease` and `kind` ("instance" or "service"); values' unknown fields are dropped.
"""

from __future__ import annotations

import base64
import json
import os
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http.client import HTTPResponse
from typing import Any

__all__ = [
    "DEFAULT_PREFIX",
    "Change",
    "Credentials",
    "EtcdError",
    "Snapshot",
    "WatchRefused",
    "follow",
    "list_instances",
    "list_services",
    "prefix_range_end",
    "read",
    "visible",
    "watch",
]

DEFAULT_PREFIX = "/nexus/services/"
# etcd sends nothing while nothing changes: a watch stream idle this long is re-opened (losslessly)
IDLE_REOPEN_SECONDS = 60.0
# the lease TTLs a registrar asks for (ETCD_LEASE_TTL_SECONDS accepts 2 to 3600): a key on a longer lease
# was not put there by a registering instance, and would outlive any instance it names
MAX_LEASE_TTL_SECONDS = 3600
# a suspect's value is shown for diagnosis only, cut to this many characters
SUSPECT_VALUE_CHARS = 200

_STRINGS = ("name", "base_url", "metadata_url", "version", "instance_id")
_READINESS = ("pass", "warn")


class EtcdError(OSError):
    """etcd answered with an error (its message, never the credentials), or refused the credentials."""


class WatchRefused(EtcdError):
    """etcd cancelled a watch for a reason other than compaction (permissions): retrying cannot help."""


@dataclass(frozen=True)
class Credentials:
    """How to reach a secured etcd, as the service does: a user (etcd's `/v3/auth/authenticate`; the token
    is sent raw in the Authorization header and renewed when etcd says it expired), a CA to verify etcd's
    certificate, and a client certificate with its key (mutual TLS). The password never appears in a repr."""

    username: str = ""
    password: str = field(default="", repr=False)
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> Credentials:
        """The service's own variables: ETCD_USERNAME, ETCD_PASSWORD, ETCD_CA_FILE, ETCD_CERT_FILE, ETCD_KEY_FILE."""
        return cls(
            username=environ.get("ETCD_USERNAME", ""),
            password=environ.get("ETCD_PASSWORD", ""),
            ca_file=environ.get("ETCD_CA_FILE", ""),
            cert_file=environ.get("ETCD_CERT_FILE", ""),
            key_file=environ.get("ETCD_KEY_FILE", ""),
        )


def visible(text: str) -> str:
    """`text` with every character a terminal could act on (ESC sequences, OSC 8 links, CR, BEL, bidi
    overrides, ...) escaped as Python writes it (`\\x1b`, `\\u202e`), and backslashes doubled, so what is
    printed is exactly what etcd holds and nothing more."""
    return "".join(
        ch if ch.isprintable() and ch != "\\" else ch.encode("unicode_escape").decode() for ch in text
    )


def redacted(url: str) -> str:
    """The URL without any user:password part, for messages."""
    parts = urllib.parse.urlsplit(url)
    return visible(parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl())


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def prefix_range_end(prefix: bytes) -> bytes:
    """etcd's range_end for "every key starting with prefix": the prefix with its last byte plus one."""
    trimmed = prefix.rstrip(b"\xff")
    if not trimmed:
        return b"\x00"  # every key
    return trimmed[:-1] + bytes([trimmed[-1] + 1])


def _range(prefix: str) -> dict[str, str]:
    return {"key": _b64(prefix.encode()), "range_end": _b64(prefix_range_end(prefix.encode()))}


class _Etcd:
    """One etcd endpoint through its JSON gateway, with the credentials it needs."""

    def __init__(self, url: str, credentials: Credentials | None, timeout: float) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in {"http", "https"}:
            raise ValueError(f"etcd URL must start with http:// or https:// (got {redacted(url)!r})")
        if "@" in parts.netloc:
            raise ValueError("etcd URL must not carry credentials: use ETCD_USERNAME and ETCD_PASSWORD")
        self.url = url.rstrip("/")
        self.credentials = credentials or Credentials()
        self.timeout = timeout
        self._token: str | None = None
        self._tls: ssl.SSLContext | None = None
        tls = self.credentials
        if bool(tls.cert_file) != bool(tls.key_file):
            raise ValueError("ETCD_CERT_FILE and ETCD_KEY_FILE go together (mutual TLS)")
        if parts.scheme == "https":
            self._tls = ssl.create_default_context(cafile=tls.ca_file or None)
            if tls.cert_file:
                self._tls.load_cert_chain(tls.cert_file, tls.key_file)
        elif tls.ca_file or tls.cert_file:
            raise ValueError("ETCD_CA_FILE and ETCD_CERT_FILE need an https:// etcd URL")

    def _send(self, path: str, body: dict[str, Any], timeout: float) -> HTTPResponse:
        headers = {"content-type": "application/json"}
        if self._token:
            headers["authorization"] = self._token  # etcd's gateway takes the token raw, without "Bearer"
        request = urllib.request.Request(  # noqa: S310 - the scheme is checked in __init__
            f"{self.url}/v3/{path}", data=json.dumps(body).encode(), headers=headers, method="POST"
        )
        try:
            response: HTTPResponse = urllib.request.urlopen(request, timeout=timeout, context=self._tls)  # noqa: S310
        except urllib.error.HTTPError as error:
            with error:
                message = _error_message(error.read())
            raise EtcdError(f"etcd answered HTTP {error.code} to /v3/{path}: {message}") from None
        return response

    def _authenticate(self) -> None:
        self._token = None
        login = {"name": self.credentials.username, "password": self.credentials.password}
        try:
            with self._send("auth/authenticate", login, self.timeout) as response:
                self._token = json.load(response).get("token") or None
        except EtcdError as error:
            raise EtcdError(f"etcd refused the credentials of user {visible(login['name'])!r}") from error
        if self._token is None:
            raise EtcdError("etcd answered /v3/auth/authenticate without a token (is auth enabled?)")

    def open(self, path: str, body: dict[str, Any], timeout: float | None = None) -> HTTPResponse:
        """The answer to one call, authenticated; a token etcd no longer accepts (simple tokens expire after
        etcd's --auth-token-ttl, 5 minutes by default) is renewed once."""
        if self.credentials.username and self._token is None:
            self._authenticate()
        try:
            return self._send(path, body, timeout or self.timeout)
        except EtcdError as error:
            if not self.credentials.username or "HTTP 401" not in str(error):
                raise
        self._authenticate()
        return self._send(path, body, timeout or self.timeout)

    def call(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        with self.open(path, body) as response:
            answer: dict[str, Any] = json.load(response)
        return answer


def _error_message(body: bytes) -> str:
    try:
        return visible(str(json.loads(body).get("error", "")))[:300]
    except (ValueError, AttributeError):
        return visible(body.decode(errors="replace"))[:300]


@dataclass(frozen=True)
class Snapshot:
    revision: int  # etcd's revision at the read: watch from revision + 1 to miss nothing
    entries: list[dict[str, Any]]  # the registrations that passed every check, sorted by key
    suspects: list[dict[str, Any]] = field(default_factory=list)  # everything else under the prefix, by key


@dataclass(frozen=True)
class Change:
    type: str  # "put" (a registration, new or changed), "delete" (the key is gone), "suspect" (the key is
    # still there but no longer, or never, a registration to route to: drop it as for a delete)
    key: str
    revision: int
    entry: dict[str, Any] | None  # the registration (put), the suspect record (suspect), None (delete)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    value = dict(pairs)
    if len(value) != len(pairs):
        raise ValueError("a field appears twice")
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _url(value: str) -> bool:
    parts = urllib.parse.urlsplit(value)
    return parts.scheme in {"http", "https"} and bool(parts.hostname) and not parts.username


def _parse(raw: bytes, name: str, instance_id: str | None) -> dict[str, Any]:
    """The fields the registrar writes, checked strictly; ValueError (the reason) when they are not so."""
    value = json.loads(raw.decode(), object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    wanted = [*_STRINGS, "capabilities"] + (["readiness"] if instance_id is not None else [])
    if missing := [name for name in wanted if name not in value]:
        raise ValueError(f"missing {', '.join(missing)}")
    for text in _STRINGS:
        if not isinstance(value[text], str) or not value[text] or not value[text].isprintable():
            raise ValueError(f"{text} is not a printable, non-empty string")
    capabilities = value["capabilities"]
    if not isinstance(capabilities, list) or not all(
        isinstance(c, str) and c.isprintable() for c in capabilities
    ):
        raise ValueError("capabilities is not a list of printable strings")
    if value["name"] != name:
        raise ValueError("name differs from the key's")
    if instance_id is not None and value["instance_id"] != instance_id:
        raise ValueError("instance_id differs from the key's")
    if instance_id is not None and value["readiness"] not in _READINESS:
        raise ValueError("readiness is neither pass nor warn")
    if not _url(value["base_url"]):
        raise ValueError("base_url is not an http(s) URL with a host")
    if value["metadata_url"] != value["base_url"].rstrip("/") + "/v1/metadata":
        raise ValueError("metadata_url is not base_url + /v1/metadata")
    return {name: value[name] for name in wanted}


class _Leases:
    """The granted TTL of each lease seen (`/v3/lease/timetolive`, without the keys: that needs no read
    permission on them), or None when it is not live. Asked once per lease: etcd deletes a lease's keys
    when it ends, so a key still on a lease asked about before is on a live lease."""

    def __init__(self, etcd: _Etcd) -> None:
        self.etcd = etcd
        self.granted: dict[str, int | None] = {}

    def verdict(self, lease: str) -> str | None:
        """Why a key on `lease` cannot be a registration, or None when it can."""
        if lease == "0":
            return "no lease: a registering instance always puts its keys on its lease"
        if lease not in self.granted:
            answer = self.etcd.call("lease/timetolive", {"ID": lease})
            live = int(answer.get("TTL", "-1")) >= 0
            self.granted[lease] = int(answer.get("grantedTTL", "0")) if live else None
        granted = self.granted[lease]
        if granted is None:
            return f"lease {lease} is not live"
        if granted > MAX_LEASE_TTL_SECONDS:
            return f"lease {lease} was granted for {granted} s, more than a registrar asks for"
        return None


def _suspect(key: str, kv: dict[str, Any], reason: str) -> dict[str, Any]:
    text = base64.b64decode(kv.get("value", "")).decode(errors="replace")
    return {
        "key": key,
        "lease": kv.get("lease", "0"),
        "kind": "suspect",
        "reason": reason,
        "value": text[:SUSPECT_VALUE_CHARS],
    }


def _registration(key: str, kv: dict[str, Any], prefix: str, leases: _Leases) -> dict[str, Any] | str:
    """The entry one key-value holds on its own, or why it cannot be one."""
    parts = key[len(prefix) :].split("/")
    if key.encode() != base64.b64decode(kv["key"]) or len(parts) > 2 or not all(parts):
        return "not a registration key (<prefix><name>[/<instance_id>])"
    lease = kv.get("lease", "0")
    if reason := leases.verdict(lease):
        return reason
    try:
        value = _parse(base64.b64decode(kv.get("value", "")), parts[0], parts[1] if len(parts) == 2 else None)
    except ValueError as error:  # UnicodeDecodeError and json's errors included
        return f"value does not parse: {error}"
    return {**value, "key": key, "lease": lease, "kind": "instance" if len(parts) == 2 else "service"}


def _verify(
    kvs: list[dict[str, Any]], prefix: str, leases: _Leases
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The registrations among `kvs` (one read of the prefix) and the suspects, each sorted by key."""
    entries: dict[str, dict[str, Any]] = {}
    suspects: dict[str, dict[str, Any]] = {}
    read: dict[str, dict[str, Any]] = {}  # each key's key-value
    for kv in kvs:
        key = base64.b64decode(kv["key"]).decode(errors="replace")
        read[key] = kv
        checked = _registration(key, kv, prefix, leases)
        if isinstance(checked, str):
            suspects[key] = _suspect(key, kv, checked)
        else:
            entries[key] = checked
    by_lease: dict[str, list[str]] = {}
    for key, entry in entries.items():
        if entry["kind"] == "instance":
            by_lease.setdefault(entry["lease"], []).append(key)
    for keys in by_lease.values():
        if len(keys) > 1:  # no registrar does this: someone put a key on another instance's lease
            for key in keys:
                del entries[key]
                others = ", ".join(other for other in keys if other != key)
                suspects[key] = _suspect(key, read[key], f"its lease also holds {others}")
    for key, entry in [(key, entry) for key, entry in entries.items() if entry["kind"] == "service"]:
        instance = entries.get(f"{key}/{entry['instance_id']}")
        if instance is None or instance["lease"] != entry["lease"]:
            reason = "names no listed instance key on its own lease"
        elif any(instance[name] != entry[name] for name in (*_STRINGS, "capabilities")):
            reason = "differs from the instance key it names"
        else:
            continue
        del entries[key]
        suspects[key] = _suspect(key, read[key], reason)
    return sorted(entries.values(), key=lambda e: e["key"]), sorted(suspects.values(), key=lambda e: e["key"])


def _read(etcd: _Etcd, prefix: str, leases: _Leases, revision: int | None = None) -> Snapshot:
    body: dict[str, Any] = _range(prefix)
    if revision is not None:
        body["revision"] = str(revision)
    answer = etcd.call("kv/range", body)
    entries, suspects = _verify(answer.get("kvs", []), prefix, leases)  # no `kvs`: none
    return Snapshot(revision or int(answer["header"]["revision"]), entries, suspects)


def read(
    etcd_url: str,
    prefix: str = DEFAULT_PREFIX,
    timeout: float = 5.0,
    *,
    credentials: Credentials | None = None,
) -> Snapshot:
    """Every registration under `prefix`, and the suspects. Raises OSError when etcd cannot be reached or
    refuses the credentials."""
    etcd = _Etcd(etcd_url, credentials, timeout)
    return _read(etcd, prefix, _Leases(etcd))


def list_instances(
    etcd_url: str,
    prefix: str = DEFAULT_PREFIX,
    timeout: float = 5.0,
    *,
    credentials: Credentials | None = None,
) -> list[dict[str, Any]]:
    """The ready instances of every service (one key each), sorted by key: only those that passed every check."""
    snapshot = read(etcd_url, prefix, timeout, credentials=credentials)
    return [entry for entry in snapshot.entries if entry["kind"] == "instance"]


def list_services(
    etcd_url: str,
    prefix: str = DEFAULT_PREFIX,
    timeout: float = 5.0,
    *,
    credentials: Credentials | None = None,
) -> list[dict[str, Any]]:
    """The service-level keys of the original layout (one per service), sorted by key: only those that repeat
    a listed instance on its lease. Route to that instance key (`instance_id`), which vanishes with it."""
    snapshot = read(etcd_url, prefix, timeout, credentials=credentials)
    return [entry for entry in snapshot.entries if entry["kind"] == "service"]


def _changes(before: Snapshot, after: Snapshot) -> Iterator[Change]:
    """What changed between two snapshots, key by key."""
    old = {entry["key"]: entry for entry in before.entries}
    new = {entry["key"]: entry for entry in after.entries}
    old_suspects = {entry["key"]: entry for entry in before.suspects}
    new_suspects = {entry["key"]: entry for entry in after.suspects}
    for key in sorted(old.keys() | new.keys() | old_suspects.keys() | new_suspects.keys()):
        if key in new:
            if new[key] != old.get(key):
                yield Change("put", key, after.revision, new[key])
        elif key in new_suspects:
            if new_suspects[key] != old_suspects.get(key):
                yield Change("suspect", key, after.revision, new_suspects[key])
        else:
            yield Change("delete", key, after.revision, None)


def _watch(etcd: _Etcd, prefix: str, since: Snapshot, leases: _Leases) -> Iterator[Change]:
    current = since
    while True:
        body = {"create_request": {**_range(prefix), "start_revision": str(current.revision + 1)}}
        try:
            with etcd.open("watch", body, timeout=IDLE_REOPEN_SECONDS) as stream:
                for line in stream:
                    message = json.loads(line)
                    if "error" in message:  # the gateway reports a failed stream in it
                        raise EtcdError(f"etcd ended the watch: {_error_message(line)}")
                    result = message.get("result", {})
                    if result.get("compact_revision"):
                        raise LookupError(
                            f"revision {current.revision + 1} is compacted; read the registry again"
                        )
                    if result.get(
                        "canceled"
                    ):  # e.g. no read permission on the prefix: reading again won't help
                        reason = visible(str(result.get("cancel_reason", "")))
                        raise WatchRefused(f"etcd refused the watch: {reason}")
                    revisions = [int(event["kv"]["mod_revision"]) for event in result.get("events", [])]
                    if revisions:  # read the prefix as of these events: the checks need every key at once
                        after = _read(etcd, prefix, leases, max(revisions))
                        yield from _changes(current, after)
                        current = after
        except TimeoutError:
            continue  # idle: open again from the next revision
        except urllib.error.URLError as error:
            if isinstance(error.reason, TimeoutError):
                continue
            raise


def watch(
    etcd_url: str,
    prefix: str,
    since: Snapshot,
    timeout: float = 5.0,
    *,
    credentials: Credentials | None = None,
) -> Iterator[Change]:
    """The changes under `prefix` after the snapshot `since` (a read()), through etcd's JSON gateway watch
    stream (POST /v3/watch: one JSON message per line): on each change the prefix is read again as of its
    revision and checked as read() does, so a change yields a put, a delete or a suspect per key. The
    stream is re-opened from the next revision when it ends or stays idle, so no change is lost while etcd
    keeps its history; raises OSError when etcd cannot be reached, LookupError when the revision was
    compacted (read again, then watch from there)."""
    etcd = _Etcd(etcd_url, credentials, timeout)
    return _watch(etcd, prefix, since, _Leases(etcd))


def follow(
    etcd_url: str,
    prefix: str = DEFAULT_PREFIX,
    retry_seconds: float = 1.0,
    *,
    credentials: Credentials | None = None,
) -> Iterator[Snapshot | Change]:
    """A snapshot, then its changes, for ever: after etcd was unreachable or the history compacted, a fresh
    snapshot (then its changes) follows. Raises OSError only when the very first read fails."""
    etcd = _Etcd(etcd_url, credentials, 5.0)
    leases = _Leases(etcd)
    snapshot = _read(etcd, prefix, leases)
    while True:
        yield snapshot
        try:
            yield from _watch(etcd, prefix, snapshot, leases)
        except WatchRefused:
            raise
        except (OSError, LookupError):  # etcd went away, or its history was compacted
            pass
        while True:
            time.sleep(retry_seconds)
            leases = _Leases(etcd)  # etcd may have lost leases while away: ask again
            try:
                snapshot = _read(etcd, prefix, leases)
                break
            except OSError:
                continue
