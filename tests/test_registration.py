"""Self-registration in a real etcd (Debian's etcd-server, started here on 127.0.0.1 and stopped by pid).

A rendered service with `etcd_registration` runs under real uvicorn (`python -m app`). Times measured
here are printed (pytest -s) for the record; only settled states are asserted.
"""

from __future__ import annotations

import base64
import contextlib
import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from devtools.live import LiveService, free_port
from nexus_template.cli import main as cli
from nexus_template.registry import list_instances, list_services, read
from tests.etcd_server import ETCD, Etcd, wait_for

pytestmark = pytest.mark.xdist_group("etcd")
TTL = 3
PREFIX = "/nexus/services/"
SERVICE_KEY = "/nexus/services/llm-proxy"


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
        started.append(LiveService(rendered("registry"), tmp_path, environment={**settings}))
        return started[-1]

    yield start
    for service in started:
        service.stop()


class Backend:
    """A backend whose health answer the test switches between 200 and 503."""

    def __init__(self) -> None:
        self.healthy = True
        backend = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200 if backend.healthy else 503)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *_args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def backend() -> Iterator[Backend]:
    server = Backend()
    yield server
    server.close()


def instance_of(service: LiveService) -> str:
    return httpx.get(f"{service.url}/v1/metadata").json()["instance_id"]


def key_of(service: LiveService) -> str:
    return f"{SERVICE_KEY}/{instance_of(service)}"


def readiness_of(service: LiveService) -> dict:
    return httpx.get(f"{service.url}/readyz").json()["checks"]


def registration_state(service: LiveService) -> str:
    return httpx.get(f"{service.url}/v1/metadata").json()["registration"]["state"]


def test_each_instance_has_its_key_with_value_and_lease_and_the_service_key_stays(
    etcd: Etcd, start_service
) -> None:
    service = start_service(etcd.url)
    key = key_of(service)
    wait_for(lambda: etcd.entry(key), timeout=10)
    entry = etcd.existing(key)
    assert entry["value"] == {
        "name": "llm-proxy",
        "base_url": "http://10.1.2.3:18441",
        "metadata_url": "http://10.1.2.3:18441/v1/metadata",
        "version": "0.1.0",
        "capabilities": ["chat.completions", "completions"],
        "instance_id": instance_of(service),
        "readiness": "pass",
    }
    assert entry["lease"] != "0"
    lease = etcd.call("lease/timetolive", {"ID": entry["lease"]})
    assert 0 < int(lease["TTL"]) <= TTL
    # the original layout's key: the same fields less readiness, on the same lease
    service_entry = etcd.entry(SERVICE_KEY)
    assert service_entry == {
        "value": {k: v for k, v in entry["value"].items() if k != "readiness"},
        "lease": entry["lease"],
    }
    assert set(etcd.keys(PREFIX)) == {key, SERVICE_KEY}, "no Traefik keys unless ETCD_TRAEFIK_ROOT is set"
    wait_for(
        lambda: readiness_of(service)["registration:etcd"][0]["status"] == "pass", timeout=5
    )  # cached 1 s
    registration = httpx.get(f"{service.url}/v1/metadata").json()["registration"]
    assert registration == {"state": "registered", "key": key, "lease_ttl_seconds": TTL, "last_error": None}
    [instance] = list_instances(etcd.url)
    assert (instance["key"], instance["kind"], instance["readiness"]) == (key, "instance", "pass")
    [legacy] = list_services(etcd.url)
    assert (legacy["key"], legacy["kind"], legacy["base_url"]) == (
        SERVICE_KEY,
        "service",
        "http://10.1.2.3:18441",
    )


def test_the_keys_go_at_once_on_sigterm_while_the_service_still_drains(etcd: Etcd, start_service) -> None:
    service = start_service(etcd.url, DRAIN_SECONDS="3")
    key = key_of(service)
    wait_for(lambda: etcd.entry(key) and etcd.entry(SERVICE_KEY), timeout=10)
    service.signal()
    gone = wait_for(lambda: not etcd.keys(PREFIX), timeout=2, step=0.01)
    assert service.process.poll() is None, "the keys must go before the service stops serving"
    assert httpx.get(f"{service.url}/health").status_code == 200
    assert service.process.wait(timeout=10) == 0
    print(f"keys gone {gone * 1000:.0f} ms after SIGTERM (drain 3 s still running)")


def test_the_keys_expire_within_the_ttl_after_sigkill(etcd: Etcd, start_service) -> None:
    service = start_service(etcd.url)
    wait_for(lambda: etcd.entry(key_of(service)), timeout=10)
    service.process.kill()
    gone = wait_for(lambda: not etcd.keys(PREFIX), timeout=TTL + 3)
    print(f"keys gone {gone:.2f} s after SIGKILL (TTL {TTL} s)")


def test_withdrawn_while_readiness_fails_and_back_when_it_recovers(
    etcd: Etcd, start_service, backend: Backend
) -> None:
    service = start_service(etcd.url, BACKEND_URL=backend.url)
    key = key_of(service)
    wait_for(lambda: etcd.entry(key), timeout=10)
    backend.healthy = False  # nobody calls /readyz: the registration's own round notices
    gone = wait_for(lambda: not etcd.keys(PREFIX), timeout=TTL / 3 + 5)
    assert service.process.poll() is None
    wait_for(lambda: registration_state(service) == "withdrawn", timeout=5)
    wait_for(
        lambda: readiness_of(service)["registration:etcd"][0]["status"] == "warn", timeout=5
    )  # cached 1 s
    assert "withdrawn" in readiness_of(service)["registration:etcd"][0]["output"]
    backend.healthy = True
    back = wait_for(lambda: etcd.entry(key) and etcd.entry(SERVICE_KEY), timeout=TTL / 3 + 5)
    assert etcd.existing(key)["value"]["readiness"] == "pass"
    # a /readyz request that sees the change wakes the registration at once (no wait for its round)
    backend.healthy = False
    httpx.get(f"{service.url}/readyz")
    woken = wait_for(lambda: etcd.entry(key) is None, timeout=5)
    print(
        f"withdrawn {gone:.2f} s after readiness began failing (round {TTL / 3:.1f} s), back {back:.2f} s "
        f"after it recovered; withdrawn {woken:.2f} s after a /readyz request saw it fail"
    )


def test_it_registers_again_after_etcd_restarts(etcd: Etcd, start_service) -> None:
    service = start_service(etcd.url)
    key = key_of(service)
    wait_for(lambda: etcd.entry(key), timeout=10)
    etcd.stop()
    time.sleep(TTL + 1)  # longer than the TTL: the keepalives fail meanwhile
    assert httpx.get(f"{service.url}/health").status_code == 200
    ready = httpx.get(f"{service.url}/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"]["registration:etcd"][0]["status"] == "warn"
    etcd.start()
    back = wait_for(lambda: etcd.entry(key) is not None, timeout=4 * TTL)
    wait_for(lambda: registration_state(service) == "registered", 5)
    assert etcd.entry(SERVICE_KEY) is not None
    print(f"registered again {back:.2f} s after etcd came back (same data dir, no service restart)")


def test_a_lost_lease_is_replaced(etcd: Etcd, start_service) -> None:
    service = start_service(etcd.url)
    key = key_of(service)
    wait_for(lambda: etcd.entry(key), timeout=10)
    old = etcd.existing(key)["lease"]
    etcd.call("lease/revoke", {"ID": old})  # as if it had expired: the keys go with it
    back = wait_for(lambda: (etcd.entry(key) or {}).get("lease") not in {None, old}, timeout=TTL + 3)
    wait_for(lambda: etcd.entry(SERVICE_KEY), timeout=TTL)
    print(f"new lease {back:.2f} s after the old one was revoked")


def test_without_etcd_it_serves_warns_and_registers_once_etcd_is_up(tmp_path: Path, start_service) -> None:
    if ETCD is None:
        pytest.skip("no etcd binary: install Debian's etcd-server (.ci/run does)")
    later = Etcd(tmp_path / "late-etcd")
    service = start_service(later.url)
    assert httpx.get(f"{service.url}/health").status_code == 200
    wait_for(lambda: registration_state(service) == "retrying", timeout=10)
    ready = httpx.get(f"{service.url}/readyz")
    assert ready.status_code == 200
    check = ready.json()["checks"]["registration:etcd"][0]
    assert check["status"] == "warn"
    assert "ConnectError" in check["output"]
    try:
        later.start()
        registered = wait_for(lambda: later.entry(key_of(service)) is not None, timeout=15)
        print(f"registered {registered:.2f} s after etcd started")
    finally:
        later.stop()


def test_replicas_keep_one_key_each_and_the_service_key_survives_its_owner(etcd: Etcd, start_service) -> None:
    replicas = [start_service(etcd.url) for _ in range(3)]
    keys = {key_of(replica): replica for replica in replicas}
    wait_for(lambda: set(etcd.keys(PREFIX)) == {*keys, SERVICE_KEY}, timeout=10)
    assert {entry["instance_id"] for entry in list_instances(etcd.url)} == {instance_of(r) for r in replicas}
    leases = {key: etcd.existing(key)["lease"] for key in keys}
    assert len(set(leases.values())) == 3, "each instance has its own lease"
    owner_lease = etcd.existing(SERVICE_KEY)["lease"]
    [owner_key] = [key for key, lease in leases.items() if lease == owner_lease]
    owner = keys.pop(owner_key)
    owner.signal()  # it hands the service key to another ready instance before revoking its lease
    assert owner.process.wait(timeout=10) == 0
    # Handed over before the revoke; if an etcd call of the hand-over times out on a loaded machine, the
    # next keepalive round of a ready instance puts the key back: only the settled state is asserted.
    immediate = set(etcd.keys(PREFIX)) == {*keys, SERVICE_KEY}
    wait_for(lambda: set(etcd.keys(PREFIX)) == {*keys, SERVICE_KEY}, timeout=TTL / 3 + 5)
    print(f"service key handed over {'before' if immediate else 'after'} the owner left")
    handed = etcd.existing(SERVICE_KEY)
    assert handed["lease"] in {leases[key] for key in keys}
    assert handed["value"]["instance_id"] in {key.rsplit("/", 1)[1] for key in keys}
    time.sleep(2 * TTL / 3)  # two keepalive rounds: nobody fights over the service key
    assert etcd.entry(SERVICE_KEY) == handed
    for replica in keys.values():
        replica.signal()
        assert replica.process.wait(timeout=10) == 0
    assert etcd.keys(PREFIX) == {}


def test_the_cli_lists_registrations(etcd: Etcd, start_service, capsys: pytest.CaptureFixture[str]) -> None:
    service = start_service(etcd.url)
    wait_for(lambda: etcd.entry(key_of(service)) and etcd.entry(SERVICE_KEY), timeout=10)
    assert cli(["services", "--etcd", etcd.url, "--json"]) == 0
    entries = json.loads(capsys.readouterr().out)
    assert [(entry["kind"], entry["name"]) for entry in entries] == [
        ("service", "llm-proxy"),
        ("instance", "llm-proxy"),
    ]
    assert cli(["services", "--etcd", etcd.url]) == 0
    table = capsys.readouterr().out
    assert instance_of(service) in table
    assert "(service key)" in table
    assert cli(["services", "--etcd", f"http://127.0.0.1:{free_port()}"]) == 1


@contextlib.contextmanager
def watching(etcd_url: str, out: Path) -> Iterator[None]:
    """`nexus-template services --watch --json` running, its output going to `out`; stopped by pid after."""
    with out.open("w") as sink:
        watcher = subprocess.Popen(
            [sys.executable, "-m", "nexus_template.cli", "services", "--etcd", etcd_url, "--watch", "--json"],
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        yield
    finally:
        watcher.terminate()
        watcher.wait(timeout=10)


def json_lines(path: Path) -> list:
    return [json.loads(line) for line in path.read_text().splitlines() if line.startswith(("[", "{"))]


def test_the_cli_follows_changes_live(etcd: Etcd, start_service, tmp_path: Path) -> None:
    """`services --watch --json` through etcd's watch stream: a start and a stop show up as they happen."""
    first = start_service(etcd.url)
    wait_for(lambda: etcd.entry(key_of(first)), timeout=10)
    out = tmp_path / "watch.out"
    with watching(etcd.url, out):
        wait_for(lambda: json_lines(out), timeout=15)
        assert {entry["key"] for entry in json_lines(out)[0]} == {key_of(first), SERVICE_KEY}
        second = start_service(etcd.url)
        second_key = key_of(second)
        wait_for(
            lambda: any(c.get("type") == "put" and c["key"] == second_key for c in json_lines(out)[1:]),
            timeout=10,
        )
        second.signal()
        assert second.process.wait(timeout=10) == 0
        wait_for(
            lambda: any(c.get("type") == "delete" and c["key"] == second_key for c in json_lines(out)[1:]),
            timeout=10,
        )
        put = next(c for c in json_lines(out)[1:] if c.get("type") == "put" and c["key"] == second_key)
        assert put["entry"]["instance_id"] == second_key.rsplit("/", 1)[1]
        assert second_key not in {entry["key"] for entry in read(etcd.url).entries}


def test_the_cli_watch_reads_again_after_etcd_restarts(etcd: Etcd, tmp_path: Path) -> None:
    """A watch stream that etcd drops is no end: `--watch` says so, reads the registry again and goes on."""
    out = tmp_path / "watch.out"
    with watching(etcd.url, out):
        wait_for(lambda: json_lines(out), timeout=15)  # the first snapshot
        base = "http://10.0.0.1:1"
        instance: dict[str, object] = {"name": "a", "base_url": base, "metadata_url": f"{base}/v1/metadata"}
        instance |= {"version": "1", "capabilities": [], "readiness": "pass", "instance_id": "1"}

        def register(key: str, value: dict) -> None:
            """As an instance does, on its own lease (persisted: it outlives the restart)."""
            lease = etcd.call("lease/grant", {"TTL": 60})["ID"]
            encoded = {"key": key, "value": json.dumps(value)}
            etcd.call(
                "kv/put",
                {k: base64.b64encode(v.encode()).decode() for k, v in encoded.items()} | {"lease": lease},
            )

        register(f"{PREFIX}a/1", instance)
        wait_for(lambda: len(json_lines(out)) == 2, timeout=10)
        etcd.stop()
        etcd.start()
        wait_for(lambda: "read again" in out.read_text(), timeout=15)
        register(f"{PREFIX}a/2", {**instance, "instance_id": "2"})
        wait_for(
            lambda: any(isinstance(c, dict) and c["key"] == f"{PREFIX}a/2" for c in json_lines(out)),
            timeout=10,
        )
        snapshot_after_restart = json_lines(out)[2]
        assert [entry["key"] for entry in snapshot_after_restart] == [f"{PREFIX}a/1"]
