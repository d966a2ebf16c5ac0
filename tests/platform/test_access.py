"""Who gets in: API keys on every route but the probes, a key of their own for /metrics, the Host header,
the service's own `authorize`, start-up refusals, and per-caller fairness against slow bodies."""

import dataclasses
import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import openai
import pytest
from litestar.exceptions import WebSocketDisconnect
from nexus_platform import Caller, ConfigError
from nexus_platform.testing import NexusService
from nexus_platform.testing._checks import assert_openai_error
from nexus_platform.testing._service import free_port

from tests.platform.conftest import Logs

KEY = "k1-" + "A" * 29 + "-rotation-one"  # 45 characters
OTHER_KEY = "k2-" + "B" * 40  # the next one, while clients move over
SCRAPER_KEY = "scraper-" + "C" * 32
KEYS = f"{KEY}, sha256:{hashlib.sha256(OTHER_KEY.encode()).hexdigest()}"
GUARDED = [
    ("GET", "/v1/models"),
    ("GET", "/v1/metadata"),
    ("GET", "/metrics"),
    ("GET", "/schema/openapi.json"),
    ("POST", "/v1/test/echo"),
    ("POST", "/v1/chat/completions"),
    ("GET", "/no/such/route"),
]
ECHO = {"input": "hello"}


def _call(client: Any, method: str, path: str, **headers: str) -> httpx.Response:
    body = {"json": ECHO} if method == "POST" else {}
    response: httpx.Response = client.request(method, path, headers=headers, **body)
    return response


def _bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


@pytest.mark.parametrize(("method", "path"), GUARDED)
def test_every_route_but_the_probes_needs_a_key(
    make_client: Callable[..., Any], method: str, path: str
) -> None:
    client = make_client(API_KEYS=KEYS)
    for headers in ({}, _bearer("wrong-" + "x" * 40), _bearer(""), {"authorization": KEY}):
        response = _call(client, method, path, **headers)
        error = assert_openai_error(response, 401)
        assert error["code"] == "invalid_api_key"
        assert response.headers["www-authenticate"].startswith("Bearer")
    for key in (KEY, OTHER_KEY):
        assert _call(client, method, path, **_bearer(key)).status_code not in (401, 403)
    assert _call(client, method, path, **{"x-api-key": KEY}).status_code not in (401, 403)
    for probe in ("/health", "/readyz"):
        assert client.get(probe).status_code == 200


def test_a_refused_request_never_reaches_the_service(make_client: Callable[..., Any], logs: Logs) -> None:
    client = make_client(API_KEYS=KEYS, LOG_LEVEL="INFO")
    # the body is never read: a malformed one still answers 401, not 400
    response = client.post(
        "/v1/test/echo", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert_openai_error(response, 401)
    assert client.post("/v1/test/echo", json=ECHO, headers=_bearer(KEY)).json()["output"] == "hello"
    client.get("/metrics", headers=_bearer(KEY))
    time.sleep(0.3)  # the log writer is a thread
    text = json.dumps(logs.read())
    assert KEY not in text
    assert OTHER_KEY not in text
    access = [line for line in logs.lines if line.get("logger") == "nexus.access"]
    fingerprint = hashlib.sha256(KEY.encode()).hexdigest()[:8]
    assert [line.get("key") for line in access if line["path"] == "/v1/test/echo"] == [None, fingerprint]
    metrics = client.get("/metrics", headers=_bearer(KEY)).text
    assert KEY not in metrics
    assert fingerprint not in metrics


def test_metrics_take_their_own_key(make_client: Callable[..., Any]) -> None:
    client = make_client(API_KEYS=KEY, METRICS_API_KEYS=SCRAPER_KEY)
    assert client.get("/metrics", headers=_bearer(SCRAPER_KEY)).status_code == 200
    assert_openai_error(client.get("/metrics", headers=_bearer(KEY)), 401)
    assert_openai_error(client.get("/v1/models", headers=_bearer(SCRAPER_KEY)), 401)


@pytest.mark.parametrize(
    ("keys", "problem"),
    [
        ("short-key", "shorter than 32"),
        ("sk-1234", "shorter than 32"),
        (f"{KEY},sha256:abc", "entry 2 is not sha256:"),
        (KEY + " with a space", "entry 1"),
    ],
)
def test_weak_or_malformed_keys_stop_start_up(nexus_service: NexusService, keys: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem) as raised:
        nexus_service.create_app(environ={"API_KEYS": keys})
    assert KEY not in str(raised.value)
    assert "short-key" not in str(raised.value)


def test_listening_beyond_this_machine_needs_keys_or_a_stated_exception(nexus_service: NexusService) -> None:
    with pytest.raises(ConfigError, match=r"API_KEYS: required when SERVICE_HOST=0\.0\.0\.0.*secrets"):
        nexus_service.create_app(environ={"SERVICE_HOST": "0.0.0.0"})
    nexus_service.create_app(environ={"SERVICE_HOST": "0.0.0.0", "API_KEYS": KEY})
    nexus_service.create_app(environ={"SERVICE_HOST": "0.0.0.0", "ALLOW_UNAUTHENTICATED": "true"})
    for loopback in ("127.0.0.1", "127.0.0.2", "::1", "localhost"):
        nexus_service.create_app(environ={"SERVICE_HOST": loopback})


@pytest.mark.slow
def test_the_process_exits_2_with_one_line(nexus_service: NexusService) -> None:
    environment = {"SERVICE_HOST": "0.0.0.0", "SERVICE_PORT": str(free_port()), "DRAIN_SECONDS": "0"}
    done = subprocess.run(
        [sys.executable, "-m", nexus_service.identity.package],
        cwd=nexus_service.root,
        env={**os.environ, **nexus_service.environ(), **environment},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "API_KEYS" in done.stderr
    assert "ALLOW_UNAUTHENTICATED=true" in done.stderr


def test_allowing_unauthenticated_is_logged(make_client: Callable[..., Any], logs: Logs) -> None:
    client = make_client(SERVICE_HOST="0.0.0.0", ALLOW_UNAUTHENTICATED="true", LOG_LEVEL="INFO")
    assert client.post("/v1/test/echo", json=ECHO).status_code == 200
    time.sleep(0.3)
    warnings = [line for line in logs.read() if line["level"] == "WARNING"]
    assert any("without API keys" in line["message"] for line in warnings), warnings


def test_the_host_header(make_client: Callable[..., Any], nexus_service: NexusService) -> None:
    for never_matching in ("svc.example:9000", "::1"):
        with pytest.raises(ConfigError, match="ALLOWED_HOSTS"):
            nexus_service.create_app(environ={"ALLOWED_HOSTS": never_matching})
    client = make_client(ALLOWED_HOSTS="svc.example, .nexus.internal, 127.0.0.1, [::1]")
    for host in ("svc.example", "SVC.example:9000", "a.b.nexus.internal", "nexus.internal", "127.0.0.1:9000"):
        assert client.post("/v1/test/echo", json=ECHO, headers={"host": host}).status_code == 200, host
    assert client.post("/v1/test/echo", json=ECHO, headers={"host": "svc.example."}).status_code == 200
    for host in ("attacker-rebind.example", "svc.example.evil", "evilnexus.internal", "localhost", "[::1]x"):
        response = client.post("/v1/test/echo", json=ECHO, headers={"host": host})
        assert assert_openai_error(response, 400)["code"] == "invalid_host", host
        assert client.get("/health", headers={"host": host}).status_code == 200  # kubelet sends the pod IP


def _raw(port: int, head: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head)
        return sock.recv(65536)


@pytest.mark.slow
def test_no_host_or_two_hosts_are_refused(live_service: Callable[..., Any]) -> None:
    service = live_service()
    for head in (
        b"GET /v1/models HTTP/1.0\r\n\r\n",
        b"GET /v1/models HTTP/1.1\r\nhost: a\r\nhost: b\r\nconnection: close\r\n\r\n",
    ):
        answer = _raw(service.port, head)
        assert answer.startswith(b"HTTP/1.1 400"), answer[:200]
    assert _raw(service.port, b"GET /v1/models HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n").startswith(
        b"HTTP/1.1 200"
    )


def test_the_service_decides_per_route(make_client: Callable[..., Any], nexus_service: NexusService) -> None:
    seen: list[Caller] = []

    def authorize(caller: Caller) -> bool | None:
        seen.append(caller)
        if caller.path == "/v1/metadata":
            return True  # public, even without a key
        if (
            caller.path == "/v1/test/echo"
            and caller.key == hashlib.sha256(OTHER_KEY.encode()).hexdigest()[:8]
        ):
            return False  # this key may not echo
        return None

    client = make_client(dataclasses.replace(nexus_service.spec, authorize=authorize), API_KEYS=KEYS)
    assert client.get("/v1/metadata").status_code == 200
    assert client.post("/v1/test/echo", json=ECHO, headers=_bearer(KEY)).status_code == 200
    assert assert_openai_error(client.post("/v1/test/echo", json=ECHO, headers=_bearer(OTHER_KEY)), 403)
    assert_openai_error(client.post("/v1/test/echo", json=ECHO), 401)
    assert {caller.path for caller in seen} >= {"/v1/metadata", "/v1/test/echo"}
    assert "/health" not in {caller.path for caller in seen}


def test_openapi_declares_the_scheme(make_client: Callable[..., Any]) -> None:
    document = make_client(API_KEYS=KEY).get("/schema/openapi.json", headers=_bearer(KEY)).json()
    assert document["components"]["securitySchemes"]["apiKey"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "A key of API_KEYS",
    }
    paths = document["paths"]
    assert paths["/v1/test/echo"]["post"]["security"] == [{"apiKey": []}]
    assert "401" in paths["/v1/models"]["get"]["responses"]
    assert "security" not in paths["/health"]["get"]
    open_document = make_client().get("/schema/openapi.json").json()
    assert "securitySchemes" not in open_document.get("components", {})


@pytest.mark.slow
def test_the_openai_sdk_works_with_a_key(live_service: Callable[..., Any]) -> None:
    service = live_service(API_KEYS=KEYS)
    client = openai.OpenAI(base_url=f"{service.url}/v1", api_key=KEY, max_retries=0)
    answer = client.chat.completions.create(model="test-chat", messages=[{"role": "user", "content": "hi"}])
    assert answer.choices
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{service.url}/v1", api_key="nope-" + "x" * 40, max_retries=0).models.list()
    assert KEY not in service.log()


def _slow_body(port: int, key: str, stop: threading.Event, outcome: list[bytes]) -> None:
    """A body sent at just above MIN_BODY_BYTES_PER_SECOND (1024 B/s) until the server ends it."""
    size = 200_000
    head = (
        f"POST /v1/test/echo HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer {key}\r\n"
        f"content-type: application/json\r\ncontent-length: {size}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head)
        sock.settimeout(0.11)
        while not stop.is_set():
            try:
                sock.sendall(b" " * 121)  # 1,100 B/s
                answer = sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                break
            outcome.append(answer)
            break


@pytest.mark.slow
def test_slow_bodies_of_one_caller_cannot_starve_another(live_service: Callable[..., Any]) -> None:
    service = live_service(
        API_KEYS=f"{KEY},{OTHER_KEY}",
        MAX_CONCURRENT_REQUESTS="4",
        MAX_BODY_SECONDS="3",
        BODY_TIMEOUT_SECONDS="2",
    )
    stop = threading.Event()
    outcomes: list[list[bytes]] = [[] for _ in range(4)]
    attackers = [
        threading.Thread(target=_slow_body, args=(service.port, KEY, stop, outcome)) for outcome in outcomes
    ]
    for thread in attackers:
        thread.start()
    try:
        time.sleep(1)  # every attacker connected and sending
        started = time.monotonic()
        while time.monotonic() - started < 2:
            answer = httpx.post(
                f"{service.url}/v1/test/echo", json=ECHO, headers=_bearer(OTHER_KEY), timeout=10
            )
            assert answer.status_code == 200, answer.text
            time.sleep(0.1)
        # the fourth attacker found its caller's share (3 of 4 slots) taken; the others end by MAX_BODY_SECONDS
        for thread in attackers:
            thread.join(timeout=15)
    finally:
        stop.set()
    statuses = sorted(int(outcome[0].split()[1]) for outcome in outcomes if outcome)
    assert statuses == [408, 408, 408, 503], statuses


def test_the_service_sees_the_path_the_router_matches(
    make_client: Callable[..., Any], nexus_service: NexusService
) -> None:
    """`//v1/test/echo` and `/v1/test/echo/` reach the echo route: a rule on its path must see them as it."""

    def authorize(caller: Caller) -> bool | None:
        return False if caller.path == "/v1/test/echo" else None

    client = make_client(dataclasses.replace(nexus_service.spec, authorize=authorize), API_KEYS=KEY)
    for path in ("/v1/test/echo", "//v1/test/echo", "/v1//test/echo", "/v1/test/echo/"):
        # a whole URL: httpx would read //v1/... as a host
        assert_openai_error(client.post(f"http://testserver{path}", json=ECHO, headers=_bearer(KEY)), 403)


def test_a_websocket_handshake_needs_a_key_and_a_host(make_client: Callable[..., Any]) -> None:
    client = make_client(API_KEYS=KEY)
    with pytest.raises(WebSocketDisconnect) as closed:
        client.websocket_connect("/v1/anything").__enter__()
    assert closed.value.code == 1008
