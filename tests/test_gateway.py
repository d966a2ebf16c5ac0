"""The gateway (issue 24) end to end: a rendered `role: gateway` service in front of rendered services, all
real uvicorn processes, with a real etcd with auth on, driven with the official `openai` SDK.

The fleet: two replicas of a `backend: openai` chat wrapper (in front of tests/platform/fake_backend.py,
plus a model whose stream is slow enough to be cut), an embeddings service and a text-to-speech service
(the template's example implementations), each registering in etcd with a role of its own; the gateway
reads the registrations with a read role on the prefix. Every service takes only the gateway's service
key; the gateway takes only the client's. Checked:

- the SDK lists every model (each owned by its service), chats (streamed and not), embeds, speaks, and
  gets model_not_found for an unknown model; a service's own route answers under /services/<name>/;
- a service started meanwhile is routable within 2 s of its registration; a chat replica stopped with
  SIGTERM under load leaves the table within 2 s and no request fails;
- under load, SIGKILL of a chat replica fails no non-streamed request (retried on the other), and the
  stream it carried ends with an error event;
- static-list mode (GATEWAY_SERVICES and <NAME>_BASE_URL, no etcd) passes the same SDK checks.

Renders run in parallel processes, services start in parallel threads; each wait is bounded, every process
is stopped by its pid.
"""

from __future__ import annotations

import contextlib
import io
import json
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from devtools.live import LiveService, free_port
from devtools.render import render
from tests.etcd_server import ETCD, Etcd, _b64, service_ranges, wait_for
from tests.platform import fake_backend

pytestmark = pytest.mark.xdist_group("etcd")

PREFIX = "/nexus/services/"
TTL = 3
CLIENT_KEY = "sk-client-" + "c" * 32
SERVICE_KEY = "sk-service-" + "s" * 32
CHAT_MODEL = "backend-model"
SLOW_STREAM = "slow-stream-model"
ANSWERS: dict[str, dict[str, Any]] = {
    "chat": {"capabilities": ["chat.completions"], "backend": "openai", "port": 18451},
    "embedder": {"capabilities": ["embeddings"], "port": 18452},
    "speaker": {"capabilities": ["audio.speech"], "port": 18453},
    "painter": {"capabilities": ["images.generations"], "port": 18454},
    "gateway": {"capabilities": [], "role": "gateway", "port": 18455},
}
USER: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hello gateway"}]


class _SlowStreamHandler(fake_backend._Handler):
    """fake_backend's answers, plus SLOW_STREAM (listed too): a chat stream of 40 events, one every 0.1 s."""

    def do_GET(self) -> None:
        if self.path != "/v1/models":
            super().do_GET()
            return
        models = [
            {"id": name, "object": "model", "created": 0, "owned_by": "tests"}
            for name in (CHAT_MODEL, SLOW_STREAM)
        ]
        body = json.dumps({"object": "list", "data": models}).encode()
        self._send(200, body)

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("content-length", 0)))
        if json.loads(raw).get("model") != SLOW_STREAM:
            # the parent reads the body from rfile: give it the bytes read here, then the connection back
            # (the next request on this keep-alive connection is read from it)
            connection, self.rfile = self.rfile, io.BytesIO(raw)
            self.headers.replace_header("content-length", str(len(raw)))
            try:
                super().do_POST()
            finally:
                self.rfile = connection
            return
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("connection", "close")
        self.end_headers()
        for index in range(40):
            delta = {"content": f"w{index} "}
            chunk = {"id": "s", "object": "chat.completion.chunk", "created": 0, "model": SLOW_STREAM,
                     "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}  # fmt: skip
            try:
                self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                self.wfile.flush()
            except OSError:
                return
            time.sleep(0.1)
        self.wfile.write(b"data: [DONE]\n\n")
        self.close_connection = True


@pytest.fixture(scope="module")
def services(template_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The five services, rendered in parallel processes."""
    folder = tmp_path_factory.mktemp("gateway-fleet")
    with ProcessPoolExecutor(max_workers=3) as pool:
        futures = {
            name: pool.submit(
                render,
                template_repo,
                folder / name,
                {"service_name": name, "etcd_registration": True, **answers},
            )
            for name, answers in ANSWERS.items()
        }
        return {name: future.result(timeout=300) for name, future in futures.items()}


@pytest.fixture(scope="module")
def backend() -> Iterator[str]:
    server = fake_backend._Server(("127.0.0.1", 0), _SlowStreamHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture(scope="module")
def etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Etcd]:
    """etcd with auth on: a role per service (its own keys), the gateway's also reads the whole prefix."""
    if ETCD is None:
        pytest.skip("no etcd binary: install Debian's etcd-server (.ci/run does)")
    server = Etcd(tmp_path_factory.mktemp("gateway-etcd") / "data").start()
    for name in ANSWERS:
        server.add_user(name, f"{name}-password", service_ranges(name, traefik_root=""))
    read = {"permType": "READ", "key": _b64(PREFIX), "range_end": _b64(PREFIX[:-1] + "0")}
    server.call("auth/role/grant", {"name": "gateway", "perm": read})
    server.enable_auth("root-password")
    yield server
    server.stop()


class Fleet:
    def __init__(self, services: dict[str, Path], etcd: Etcd, backend: str, logs: Path) -> None:
        self.services, self.etcd, self.backend, self.logs = services, etcd, backend, logs
        self.started: list[LiveService] = []

    def start(self, name: str, *, registered: bool = True, **environment: str) -> LiveService:
        port = free_port()
        settings = {"DRAIN_SECONDS": "2", "API_KEYS": SERVICE_KEY, "LOG_LEVEL": "WARNING"}
        if registered:
            settings |= {
                "ETCD_URL": self.etcd.url,
                "SERVICE_BASE_URL": f"http://127.0.0.1:{port}",
                "ETCD_LEASE_TTL_SECONDS": str(TTL),
                "ETCD_USERNAME": name,
                "ETCD_PASSWORD": f"{name}-password",
            }
        if name == "chat":
            settings["BACKEND_URL"] = self.backend
        if name == "gateway":
            settings |= {"API_KEYS": CLIENT_KEY, "GATEWAY_SERVICE_API_KEY": SERVICE_KEY}
        service = LiveService(
            self.services[name], self.logs, port=port, environment={**settings, **environment}
        )
        self.started.append(service)
        return service

    def start_all(self, *names: str) -> list[LiveService]:
        with ThreadPoolExecutor(max_workers=len(names)) as pool:
            return list(pool.map(self.start, names))


@pytest.fixture(scope="module")
def fleet(services, etcd, backend, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    fleet = Fleet(services, etcd, backend, tmp_path_factory.mktemp("gateway-logs"))
    try:
        fleet.gateway, *fleet.chats, fleet.embedder, fleet.speaker = fleet.start_all(  # type: ignore[attr-defined]  # the fleet's attributes are set here
            "gateway", "chat", "chat", "embedder", "speaker"
        )
        yield fleet
    finally:
        for service in fleet.started:
            service.stop()


def sdk(gateway: LiveService, key: str = CLIENT_KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0, timeout=20)


def table(gateway: LiveService) -> list[dict[str, Any]]:
    answer = httpx.get(
        f"{gateway.url}/v1/gateway/instances", headers={"authorization": f"Bearer {CLIENT_KEY}"}
    )
    assert answer.status_code == 200, answer.text
    return [each for each in answer.json() if each["routable"]]


def routable(gateway: LiveService, model: str) -> int:
    return sum(model in each["models"] for each in table(gateway))


def instance_id(service: LiveService) -> str:
    metadata = httpx.get(f"{service.url}/v1/metadata", headers={"authorization": f"Bearer {SERVICE_KEY}"})
    return str(metadata.json()["instance_id"])


def check_with_the_sdk(gateway: LiveService) -> None:
    client = sdk(gateway)
    # the model list is cached for half a second (ServiceSpec.models_cache_seconds): it follows the table
    wait_for(lambda: len(client.models.list().data) == 4, timeout=10)
    owners = {model.id: model.owned_by for model in client.models.list()}
    assert owners == {
        CHAT_MODEL: "chat",
        SLOW_STREAM: "chat",
        "example-embedding": "embedder",
        "example-tts": "speaker",
    }
    chat = client.chat.completions.with_raw_response.create(model=CHAT_MODEL, messages=USER)
    assert chat.parse().choices[0].message.content == "Hello from the backend"
    assert chat.headers["x-nexus-instance"].startswith("chat/")
    assert chat.headers["x-nexus-attempts"] == "1"
    stream = client.chat.completions.create(model=CHAT_MODEL, messages=USER, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "Hello from the backend"
    embedded = client.embeddings.create(model="example-embedding", input=["a", "b"])
    assert len(embedded.data) == 2
    speech = client.audio.speech.create(model="example-tts", voice="alloy", input="hi", response_format="wav")
    assert speech.content.startswith(b"RIFF")
    with pytest.raises(openai.NotFoundError) as unknown:
        client.chat.completions.create(model="no-such-model", messages=USER)
    assert unknown.value.code == "model_not_found"
    with pytest.raises(openai.AuthenticationError):  # the gateway takes client keys only
        sdk(gateway, SERVICE_KEY).models.list()


def test_the_sdk_lists_chats_embeds_and_speaks_through_the_gateway(fleet) -> None:
    gateway = fleet.gateway
    wait_for(lambda: routable(gateway, CHAT_MODEL) == 2 and len(table(gateway)) == 4, timeout=10)
    check_with_the_sdk(gateway)
    own = httpx.get(
        f"{gateway.url}/services/embedder/v1/models", headers={"authorization": f"Bearer {CLIENT_KEY}"}
    )
    assert own.status_code == 200
    assert own.headers["x-nexus-instance"].startswith("embedder/")
    assert [model["id"] for model in own.json()["data"]] == ["example-embedding"]
    # both replicas take requests (least outstanding, ties at random)
    answered = {sdk(gateway).chat.completions.with_raw_response.create(model=CHAT_MODEL, messages=USER).headers["x-nexus-instance"]
                for _ in range(20)}  # fmt: skip
    assert len(answered) == 2


@contextlib.contextmanager
def load(gateway: LiveService, clients: int) -> Iterator[dict[str, list[Any]]]:
    """`clients` threads sending non-streamed chats through the gateway until the block ends."""
    results: dict[str, list[Any]] = {"ok": [], "failed": []}
    stop = threading.Event()

    def client() -> None:
        with httpx.Client(timeout=20, headers={"authorization": f"Bearer {CLIENT_KEY}"}) as http:
            while not stop.is_set():
                try:
                    answer = http.post(
                        f"{gateway.url}/v1/chat/completions", json={"model": CHAT_MODEL, "messages": USER}
                    )
                except httpx.HTTPError as error:
                    results["failed"].append(repr(error))
                    continue
                if answer.status_code == 200:
                    results["ok"].append(answer.headers["x-nexus-attempts"])
                else:
                    results["failed"].append((answer.status_code, answer.text[:300]))

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    try:
        yield results
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)


def test_a_new_service_routes_within_2s_and_a_drained_replica_leaves_without_failures(fleet) -> None:
    gateway, etcd = fleet.gateway, fleet.etcd
    wait_for(lambda: routable(gateway, CHAT_MODEL) == 2, timeout=10)
    painter, third = fleet.start_all("painter", "chat")
    key = f"{PREFIX}painter/{instance_id(painter)}"
    wait_for(lambda: etcd.entry(key) is not None, timeout=10)
    registered = time.monotonic()
    wait_for(lambda: routable(gateway, "example-image") == 1, timeout=10, step=0.02)
    appeared = time.monotonic() - registered
    print(f"painter routable {appeared:.2f} s after its key appeared")
    assert appeared < 2
    image = sdk(gateway).images.generate(model="example-image", prompt="a cat", response_format="b64_json")
    assert image.data

    wait_for(lambda: routable(gateway, CHAT_MODEL) == 3, timeout=10)
    leaving = f"chat/{instance_id(third)}"
    with load(gateway, clients=2) as results:
        time.sleep(1)
        third.signal(signal.SIGTERM)
        stopped = time.monotonic()
        wait_for(
            lambda: leaving not in {f"{e['service']}/{e['instance_id']}" for e in table(gateway)}, timeout=10
        )
        left = time.monotonic() - stopped
        time.sleep(1.5)
    print(f"SIGTERMed replica left the table {left:.2f} s after the signal; {len(results['ok'])} requests")
    assert left < 2
    assert results["failed"] == []
    assert len(results["ok"]) > 20
    assert third.process.wait(timeout=10) == 0


def open_stream(gateway: LiveService) -> tuple[httpx.Client, httpx.Response]:
    http = httpx.Client(timeout=20, headers={"authorization": f"Bearer {CLIENT_KEY}"})
    request = http.build_request(
        "POST",
        f"{gateway.url}/v1/chat/completions",
        json={"model": SLOW_STREAM, "messages": USER, "stream": True},
    )
    answer = http.send(request, stream=True)
    assert answer.status_code == 200
    return http, answer


def test_sigkill_of_a_replica_under_load_fails_no_request_and_ends_its_stream_with_an_error(fleet) -> None:
    gateway = fleet.gateway
    wait_for(lambda: routable(gateway, CHAT_MODEL) == 2, timeout=15)
    victim, survivor = fleet.chats
    victim_label = f"chat/{instance_id(victim)}"
    streams = [open_stream(gateway) for _ in range(2)]  # one on each replica: least outstanding
    assert {answer.headers["x-nexus-instance"] for _, answer in streams} == {
        victim_label,
        f"chat/{instance_id(survivor)}",
    }
    with load(gateway, clients=4) as results:
        time.sleep(1)
        victim.signal(signal.SIGKILL)
        time.sleep(3)
    retried = sum(attempts == "2" for attempts in results["ok"])
    print(f"SIGKILL under load: {len(results['ok'])} ok ({retried} retried), {len(results['failed'])} failed")
    assert results["failed"] == []
    assert len(results["ok"]) > 20
    for http, answer in streams:
        events = [line for line in answer.iter_lines() if line.startswith("data: ")]
        if answer.headers["x-nexus-instance"] == victim_label:
            assert json.loads(events[-1].removeprefix("data: "))["error"]["code"] == "upstream_error"
        else:
            assert events[-1] == "data: [DONE]"
        http.close()
    wait_for(lambda: routable(gateway, CHAT_MODEL) == 1, timeout=TTL + 5)  # the lease expired


def test_static_list_mode_without_etcd(fleet) -> None:
    chat, embedder, speaker = fleet.chats[1], fleet.embedder, fleet.speaker
    gateway = fleet.start(
        "gateway",
        registered=False,
        GATEWAY_SERVICES=chat.url,
        EMBEDDER_BASE_URL=embedder.url,
        SPEAKER_BASE_URL=speaker.url,
    )
    wait_for(lambda: len(table(gateway)) == 3, timeout=10)
    check_with_the_sdk(gateway)
