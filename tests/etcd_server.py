"""A real etcd (Debian's etcd-server) on loopback ports for the registration tests, stopped by pid."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from devtools.live import free_port

ETCD = shutil.which("etcd")


class Etcd:
    """One etcd member; stop() and start() keep its data directory."""

    def __init__(self, data_dir: Path, port: int | None = None) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self.peer_port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self) -> Etcd:
        assert ETCD is not None, "etcd is not installed (apt-get install etcd-server)"
        peer = f"http://127.0.0.1:{self.peer_port}"
        self.process = subprocess.Popen(
            [
                ETCD, "--name", "test", "--data-dir", str(self.data_dir), "--log-level", "error",
                "--listen-client-urls", self.url, "--advertise-client-urls", self.url,
                "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer, "--initial-cluster", f"test={peer}",
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
        return httpx.post(f"{self.url}/v3/{path}", json=body, timeout=5).json()

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


def wait_for(condition: Callable[[], object], timeout: float, step: float = 0.05) -> float:
    """Seconds until `condition()` is truthy; fails after `timeout`."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout, f"not within {timeout}s"
        time.sleep(step)
    return time.monotonic() - started
