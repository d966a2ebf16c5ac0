"""Self-registration in a real etcd (Debian's etcd-server, started here on 127.0.0.1 and stopped by pid).

A rendered service with `etcd_registration` runs under real uvicorn (`python -m app`). Times measured
here are printed (pytest -s) for the record.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from nexus_template.cli import main as cli
from nexus_template.live import LiveService, free_port
from nexus_template.registry import list_services

pytestmark = pytest.mark.xdist_group("etcd")
ETCD = shutil.which("etcd")
TTL = 3
KEY = "/nexus/services/llm-proxy"


class Etcd:
    """One etcd member on loopback ports; stop() and start() keep its data directory."""

    def __init__(self, data_dir: Path, port: int | None = None) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self.peer_port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self) -> Etcd:
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

    def entry(self, key: str = KEY) -> dict | None:
        """{"value": decoded JSON, "lease": id} of the key, or None."""
        kvs = self.call("kv/range", {"key": base64.b64encode(key.encode()).decode()}).get("kvs", [])
        if not kvs:
            return None
        return {"value": json.loads(base64.b64decode(kvs[0]["value"])), "lease": kvs[0].get("lease", "0")}


def wait_for(condition: Callable[[], object], timeout: float, step: float = 0.05) -> float:
    """Seconds until `condition()` is truthy; fails after `timeout`."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout, f"not within {timeout}s"
        time.sleep(step)
    return time.monotonic() - started


@pytest.fixture
def etcd(tmp_path: Path) -> Iterator[Etcd]:
    if ETCD is None:
        pytest.skip("no etcd binary: install Debian's etcd-server (.ci/run does)")
    server = Etcd(tmp_path / "etcd-data").start()
    yield server
    server.stop()


@pytest.fixture
def start_service(rendered, tmp_path: Path) -> Iterator[Callable[..., LiveService]]:
    started: list[LiveService] = []

    def start(etcd_url: str, **environment: str) -> LiveService:
        settings = {
            "ETCD_URL": etcd_url,
            "SERVICE_BASE_URL": "http://10.1.2.3:18441",
            "ETCD_LEASE_TTL_SECONDS": str(TTL),
            "DRAIN_SECONDS": "0",
            **environment,
        }
        started.append(LiveService(rendered("registry"), tmp_path, **settings))
        return started[-1]

    yield start
    for service in started:
        service.stop()


def instance_of(service: LiveService) -> str:
    return httpx.get(f"{service.url}/v1/metadata").json()["instance_id"]


def test_the_key_appears_with_the_right_value_and_a_lease(etcd: Etcd, start_service) -> None:
    service = start_service(etcd.url)
    wait_for(etcd.entry, timeout=5)
    entry = etcd.entry()
    assert entry["value"] == {
        "name": "llm-proxy",
        "base_url": "http://10.1.2.3:18441",
        "metadata_url": "http://10.1.2.3:18441/v1/metadata",
        "version": "0.1.0",
        "instance_id": instance_of(service),
        "capabilities": ["chat.completions", "completions"],
    }
    assert entry["lease"] != "0"
    lease = etcd.call("lease/timetolive", {"ID": entry["lease"]})
    assert 0 < int(lease["TTL"]) <= TTL
    ready = httpx.get(f"{service.url}/readyz").json()
    assert ready["checks"]["registration:etcd"][0]["status"] == "pass"
    registration = httpx.get(f"{service.url}/v1/metadata").json()["registration"]
    assert registration == {"state": "registered", "key": KEY, "lease_ttl_seconds": TTL, "last_error": None}
    [listed] = list_services(etcd.url)
    assert listed["key"] == KEY
    assert listed["instance_id"] == entry["value"]["instance_id"]


def test_the_key_goes_at_once_on_sigterm_while_the_service_still_drains(etcd: Etcd, start_service) -> None:
    service = start_service(etcd.url, DRAIN_SECONDS="3")
    wait_for(etcd.entry, timeout=5)
    service.signal()
    gone = wait_for(lambda: etcd.entry() is None, timeout=2, step=0.01)
    assert service.process.poll() is None, "the key must go before the service stops serving"
    assert httpx.get(f"{service.url}/health").status_code == 200
    assert service.process.wait(timeout=10) == 0
    print(f"key gone {gone * 1000:.0f} ms after SIGTERM (drain 3 s still running)")


def test_the_key_expires_within_the_ttl_after_sigkill(etcd: Etcd, start_service) -> None:
    service = start_service(etcd.url)
    wait_for(etcd.entry, timeout=5)
    service.process.kill()
    gone = wait_for(lambda: etcd.entry() is None, timeout=TTL + 2)
    print(f"key gone {gone:.2f} s after SIGKILL (TTL {TTL} s)")


def test_it_registers_again_after_etcd_restarts(etcd: Etcd, start_service) -> None:
    service = start_service(etcd.url)
    wait_for(etcd.entry, timeout=5)
    etcd.stop()
    time.sleep(TTL + 1)  # longer than the TTL: the keepalives fail meanwhile
    assert httpx.get(f"{service.url}/health").status_code == 200
    ready = httpx.get(f"{service.url}/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"]["registration:etcd"][0]["status"] == "warn"
    etcd.start()
    back = wait_for(lambda: etcd.entry() is not None, timeout=4 * TTL)
    wait_for(
        lambda: httpx.get(f"{service.url}/v1/metadata").json()["registration"]["state"] == "registered", 5
    )
    print(f"registered again {back:.2f} s after etcd came back (same data dir, no service restart)")


def test_a_lost_lease_is_replaced(etcd: Etcd, start_service) -> None:
    start_service(etcd.url)
    wait_for(etcd.entry, timeout=5)
    old = etcd.entry()["lease"]
    etcd.call("lease/revoke", {"ID": old})  # as if it had expired: the key goes with it
    back = wait_for(lambda: (etcd.entry() or {}).get("lease") not in {None, old}, timeout=TTL + 2)
    print(f"new lease {back:.2f} s after the old one was revoked")


def test_without_etcd_it_serves_warns_and_registers_once_etcd_is_up(tmp_path: Path, start_service) -> None:
    if ETCD is None:
        pytest.skip("no etcd binary: install Debian's etcd-server (.ci/run does)")
    later = Etcd(tmp_path / "late-etcd")
    service = start_service(later.url)
    assert httpx.get(f"{service.url}/health").status_code == 200
    ready = httpx.get(f"{service.url}/readyz")
    assert ready.status_code == 200
    check = ready.json()["checks"]["registration:etcd"][0]
    assert check["status"] == "warn"
    assert "ConnectError" in check["output"]
    assert httpx.get(f"{service.url}/v1/metadata").json()["registration"]["state"] == "retrying"
    try:
        later.start()
        registered = wait_for(lambda: later.entry() is not None, timeout=15)
        print(f"registered {registered:.2f} s after etcd started")
    finally:
        later.stop()


def test_replicas_share_the_key_and_it_survives_the_last_writer(etcd: Etcd, start_service) -> None:
    first = start_service(etcd.url)
    first_id = instance_of(first)
    wait_for(lambda: (etcd.entry() or {}).get("value", {}).get("instance_id") == first_id, timeout=5)
    second = start_service(etcd.url)
    wait_for(lambda: registration_state(second) == "registered", timeout=5)  # it has put the shared key
    second.signal()  # if its lease owns the key now, the revoke deletes it
    assert second.process.wait(timeout=10) == 0
    # Only settled states are asserted: on a busy machine the first replica may put the key back before any
    # poll could see it missing, so the gap itself is never waited for.
    back = wait_for(
        lambda: (etcd.entry() or {}).get("value", {}).get("instance_id") == first_id,
        timeout=TTL / 3 + 5,  # one keepalive interval, plus slack for a loaded machine
    )
    time.sleep(2 * TTL / 3)  # two more keepalive rounds: the key stays the first replica's
    assert etcd.entry()["value"]["instance_id"] == first_id
    assert registration_state(first) == "registered"
    print(
        f"key back (first replica) {back:.2f} s after the last writer left; keepalive interval {TTL / 3:.1f} s"
    )


def registration_state(service: LiveService) -> str:
    return httpx.get(f"{service.url}/v1/metadata").json()["registration"]["state"]


def test_the_cli_lists_registrations(etcd: Etcd, start_service, capsys: pytest.CaptureFixture[str]) -> None:
    start_service(etcd.url)
    wait_for(etcd.entry, timeout=5)
    assert cli(["services", "--etcd", etcd.url, "--json"]) == 0
    [entry] = json.loads(capsys.readouterr().out)
    assert entry["name"] == "llm-proxy"
    assert cli(["services", "--etcd", f"http://127.0.0.1:{free_port()}"]) == 1
