"""A real etcd (Debian's etcd-server) on loopback ports for the registration tests, stopped by pid.

`enable_auth()` turns etcd's authentication on (a root user, then `auth/enable`); this helper's own calls
then carry root's token. `add_user()` creates a user with a role of its own, granted read-write on key
ranges: the JSON gateway's equivalents of the `etcdctl user add / role add / role grant-permission /
user grant-role / auth enable` commands docs/registration.md gives.
"""

from __future__ import annotations

import base64
import contextlib
import json
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
from nexus_platform._registration import role

from devtools.live import LiveService, free_port

ETCD = shutil.which("etcd")


class Etcd:
    """One etcd member; stop() and start() keep its data directory."""

    def __init__(self, data_dir: Path, port: int | None = None, auth_token_ttl: int | None = None) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self.peer_port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None
        # seconds etcd keeps an idle simple token (its default: 300): short, the clients must authenticate again
        self.auth_token_ttl = auth_token_ttl
        self.root_password: str | None = None
        self._root_token: str | None = None

    def start(self) -> Etcd:
        assert ETCD is not None, "etcd is not installed (apt-get install etcd-server)"
        peer = f"http://127.0.0.1:{self.peer_port}"
        self.process = subprocess.Popen(
            [
                ETCD, "--name", "test", "--data-dir", str(self.data_dir), "--log-level", "error",
                "--listen-client-urls", self.url, "--advertise-client-urls", self.url,
                "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer, "--initial-cluster", f"test={peer}",
                *(["--auth-token-ttl", str(self.auth_token_ttl)] if self.auth_token_ttl else []),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/health", timeout=1).json().get("health") == "true":
                    return self
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.1)
        raise AssertionError("etcd did not become healthy")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=20)

    def call(self, path: str, body: dict) -> dict:
        """The answer of a call as root once auth is on (anonymous before)."""
        return self._as_root(path, body).json()

    def _as_root(self, path: str, body: dict) -> httpx.Response:
        if self.root_password is None:
            return self.post(path, body)
        if self._root_token is None:
            self._root_token = self.authenticate("root", self.root_password)
        answer = self.post(path, body, self._root_token)
        if answer.status_code == 401:  # the token expired (auth_token_ttl)
            self._root_token = self.authenticate("root", self.root_password)
            answer = self.post(path, body, self._root_token)
        return answer

    def post(self, path: str, body: dict, token: str | None = None) -> httpx.Response:
        """A call with `token` (None: anonymous), answer unchecked."""
        headers = {"authorization": token} if token else {}
        return httpx.post(f"{self.url}/v3/{path}", json=body, headers=headers, timeout=5)

    def authenticate(self, name: str, password: str) -> str:
        answer = self.post("auth/authenticate", {"name": name, "password": password})
        assert answer.status_code == 200, answer.text
        return str(answer.json()["token"])

    def add_user(self, name: str, password: str, ranges: list[tuple[str, str]]) -> None:
        """User `name` with role `name`, read-write on each (key, range_end) ("": the key alone)."""
        self._admin("auth/user/add", {"name": name, "password": password})
        self._admin("auth/role/add", {"name": name})
        for key, end in ranges:
            permission = {
                "permType": "READWRITE",
                "key": _b64(key),
                **({"range_end": _b64(end)} if end else {}),
            }
            self._admin("auth/role/grant", {"name": name, "perm": permission})
        self._admin("auth/user/grant", {"user": name, "role": name})

    def enable_auth(self, root_password: str) -> None:
        """etcd refuses anonymous calls from now on; this helper calls as root."""
        self.add_user("root", root_password, [])  # etcd's "root" role grants everything
        self._admin("auth/enable", {})
        self.root_password = root_password

    def _admin(self, path: str, body: dict) -> None:
        answer = self._as_root(path, body)
        assert answer.status_code == 200, f"{path}: {answer.text}"

    def put(self, key: str, value: str) -> None:
        self.call("kv/put", {"key": _b64(key), "value": _b64(value)})

    def entry(self, key: str) -> dict | None:
        """{"value": decoded JSON, "lease": id} of the key, or None."""
        kvs = self.call("kv/range", {"key": _b64(key)}).get("kvs", [])
        if not kvs:
            return None
        return {"value": json.loads(base64.b64decode(kvs[0]["value"])), "lease": kvs[0].get("lease", "0")}

    def existing(self, key: str) -> dict:
        """The entry of a key that must be there (AssertionError naming it if not)."""
        found = self.entry(key)
        assert found is not None, f"{key} is not in etcd"
        return found

    def keys(self, prefix: str) -> dict[str, str]:
        """Every key under `prefix` with its (text) value."""
        end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
        kvs = self.call("kv/range", {"key": _b64(prefix), "range_end": _b64(end)}).get("kvs", [])
        return {
            base64.b64decode(kv["key"]).decode(): base64.b64decode(kv.get("value", "")).decode() for kv in kvs
        }


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def service_ranges(
    service: str, prefix: str = "/nexus/services/", traefik_root: str = "traefik"
) -> list[tuple[str, str]]:
    """The (key, range_end) ranges of a service's minimal etcd role (docs/registration.md), as the platform
    computes them for `etcd-init`: the tests check that the registrar stays inside them and that they
    reach no other service's keys."""
    return role.service_ranges(service, prefix, traefik_root)


def wait_for(condition: Callable[[], object], timeout: float, step: float = 0.05) -> float:
    """Seconds until `condition()` is truthy; fails after `timeout`."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout, f"not within {timeout}s"
        time.sleep(step)
    return time.monotonic() - started


@contextlib.contextmanager
def registering_services(rendered, folder: Path, ttl: int) -> Iterator[Callable[..., LiveService]]:
    """start(etcd_url, **settings): the "registry" answer set's service on a free port, registering in etcd
    with lease TTL `ttl` and Traefik routing on the `web` entry point; every one stopped by pid at the end."""
    started: list[LiveService] = []

    def start(etcd_url: str, **environment: str) -> LiveService:
        port = free_port()
        settings = {
            "ETCD_URL": etcd_url,
            "SERVICE_BASE_URL": f"http://127.0.0.1:{port}",
            "ETCD_LEASE_TTL_SECONDS": str(ttl),
            "ETCD_TRAEFIK_ROOT": "traefik",
            "ETCD_TRAEFIK_ENTRYPOINTS": "web",
            "DRAIN_SECONDS": "0",
            **environment,
        }
        started.append(LiveService(rendered("registry"), folder, port=port, environment=settings))
        return started[-1]

    try:
        yield start
    finally:
        for service in started:
            service.stop()
