"""The gateway in process (nexus_platform.gateway): its app built with create_app around gateway_spec, in
front of small upstreams of this file (real HTTP servers in threads, each answering /v1/metadata,
/v1/models and /readyz like a Nexus service), in static-list mode. The end-to-end story with etcd and
rendered services is tests/test_gateway.py.
"""

import base64
import contextlib
import json
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest
from litestar.testing import TestClient
from nexus_platform import ConfigError, NexusContext
from nexus_platform._registration.etcd import KeyValue
from nexus_platform.gateway import Gateway, GatewaySettings, gateway_spec
from nexus_platform.gateway import gateway_of as nexus_gateway
from nexus_platform.gateway._discovery import registrations
from nexus_platform.gateway._forward import _streamed_usage
from nexus_platform.gateway._settings import model_owners, static_urls

SERVICE_KEY = "sk-service-" + "s" * 32
Client = TestClient[Any]


class Upstream:
    """One instance of a service: `mode` says how it answers a POST (ok, busy, stream, break, redirect,
    keep-alive: answers a connection's first request and keeps it open, closes it at the next one; drop:
    reads the request and closes the connection, as a process that died of it)."""

    def __init__(self, name: str, models: list[str], mode: str = "ok") -> None:
        self.name, self.models, self.mode = name, models, mode
        self.instance_id = f"{name}-{id(self):x}"
        self.received: list[tuple[str, bytes, dict[str, str]]] = []
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            calls: ClassVar[int] = 0

            def _send(self, status: int, body: bytes, **headers: str) -> None:
                self.send_response(status)
                self.send_header("content-type", headers.pop("content_type", "application/json"))
                self.send_header("content-length", str(len(body)))
                if upstream.mode != "keep-alive":  # every request opens a connection: a stop refuses
                    self.send_header("connection", "close")
                for header, value in headers.items():
                    self.send_header(header.replace("_", "-"), value)
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                if self.path == "/v1/metadata":
                    metadata = {
                        "name": upstream.name,
                        "instance_id": upstream.instance_id,
                        "capabilities": ["c"],
                    }
                    self._send(200, json.dumps(metadata).encode())
                elif self.path == "/v1/models":
                    data = [
                        {"id": m, "object": "model", "created": 0, "owned_by": "x"} for m in upstream.models
                    ]
                    self._send(200, json.dumps({"object": "list", "data": data}).encode())
                elif self.path == "/readyz":
                    self._send(200, b'{"status":"pass"}')
                else:
                    upstream.received.append((self.path, b"", dict(self.headers)))
                    self._send(200, json.dumps({"path": self.path, "by": upstream.instance_id}).encode())

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                if upstream.mode == "keep-alive" and getattr(self, "answered", False):
                    self.close_connection = True  # as a server whose keep-alive ran out just then
                    return
                self.answered = True
                upstream.received.append((self.path, body, dict(self.headers)))
                if upstream.mode == "drop":
                    self.close_connection = True
                    return
                if upstream.mode == "busy":
                    error = {
                        "error": {"message": f"{upstream.instance_id} is busy", "type": "x", "code": "busy"}
                    }
                    self._send(503, json.dumps(error).encode(), retry_after="7", x_should_retry="true")
                elif upstream.mode == "redirect":  # to an address only the gateway's network reaches
                    self._send(307, b"", location="http://127.0.0.1:9/latest/meta-data")
                elif upstream.mode in ("stream", "break"):
                    self._stream(broken=upstream.mode == "break")
                else:
                    answer = {
                        "by": upstream.instance_id,
                        "usage": {"prompt_tokens": 2, "completion_tokens": 3},
                    }
                    self._send(200, json.dumps(answer).encode())

            def _stream(self, *, broken: bool) -> None:
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.send_header("transfer-encoding", "chunked")
                self.end_headers()
                for index in range(3):
                    event = f'data: {{"n": {index}}}\n\n'.encode()
                    if broken and index == 1:  # half a chunk, then the connection closes
                        self.wfile.write(b"%x\r\n%s" % (len(event), event[:5]))
                        self.wfile.flush()
                        self.close_connection = True
                        return
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
                    self.wfile.flush()
                    time.sleep(0.05)
                # the usage event a client asks for with stream_options.include_usage, last before [DONE]
                usage = b'data: {"choices": [], "usage": {"prompt_tokens": 4, "completion_tokens": 5}}\n\n'
                self.wfile.write(b"%x\r\n%s\r\n" % (len(usage), usage))
                done = b"data: [DONE]\n\n"
                self.wfile.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(done), done))
                self.close_connection = True

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def label(self) -> str:
        return f"{self.name}/{self.instance_id}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def upstreams() -> Iterator[Callable[..., Upstream]]:
    started: list[Upstream] = []

    def start(name: str, models: list[str], mode: str = "ok") -> Upstream:
        started.append(Upstream(name, models, mode))
        return started[-1]

    yield start
    for upstream in started:
        upstream.stop()


@pytest.fixture
def gateway(make_client, make_identity) -> Callable[..., Client]:
    """gateway(*upstreams, **environment) -> a started gateway app routing to them (static list)."""

    def make(*upstreams: Upstream, **environment: str) -> Client:
        client: Client = make_client(
            gateway_spec(lifespan=_remembered),
            make_identity(),
            GATEWAY_SERVICES=",".join(upstream.url for upstream in upstreams),
            GATEWAY_SERVICE_API_KEY=SERVICE_KEY,
            **environment,
        )
        deadline = time.monotonic() + 10
        while len([row for row in client.get("/v1/gateway/instances").json() if row["routable"]]) < len(
            upstreams
        ):
            assert time.monotonic() < deadline, client.get("/v1/gateway/instances").json()
            time.sleep(0.05)
        return client

    return make


_RUNNING: list[Gateway] = []


@contextlib.asynccontextmanager
async def _remembered(nexus: NexusContext) -> AsyncIterator[None]:
    """The gateway service's own lifespan, here: it notes the running gateway for the test to look at."""
    _RUNNING.append(nexus_gateway(nexus))
    yield


def gateway_of(client: Client) -> Gateway:
    """The gateway the client's app runs (the last one started)."""
    assert client.get("/health").status_code == 200
    return _RUNNING[-1]


def test_routes_by_model_forwards_the_body_as_received_and_lists_the_union(upstreams, gateway) -> None:
    chat, embed = upstreams("chat", ["m-chat", "shared"]), upstreams("embed", ["m-embed", "shared"])
    client = gateway(chat, embed)
    listed = client.get("/v1/models").json()["data"]
    assert {(model["id"], model["owned_by"]) for model in listed} == {
        ("m-chat", "chat"),
        ("m-embed", "embed"),
        ("shared", "chat"),  # the first service by name owns a model several serve
    }
    body = b'{"messages": [],   "model": "m-embed", "extra": "\\u00e9t\\u00e9"}'
    answer = client.post(
        "/v1/embeddings?x=1",
        content=body,
        headers={"content-type": "application/json", "authorization": "Bearer client", "x-request-id": "r-1"},
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["by"] == embed.instance_id
    assert answer.headers["x-nexus-instance"] == embed.label
    assert answer.headers["x-nexus-attempts"] == "1"
    path, received, headers = embed.received[-1]
    assert (path, received) == ("/v1/embeddings?x=1", body)  # byte for byte
    assert headers["authorization"] == f"Bearer {SERVICE_KEY}"  # the gateway's key, not the client's
    assert headers["x-request-id"] == "r-1"
    unknown = client.post("/v1/chat/completions", json={"model": "nope", "messages": []})
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "model_not_found"
    assert client.post("/v1/chat/completions", json={"messages": []}).status_code == 400
    assert client.post("/v1/chat/completions", content=b"not json").json()["error"]["code"] == "invalid_json"
    wrong_type = client.post("/v1/chat/completions", json={"model": 5}).json()["error"]
    assert (wrong_type["code"], wrong_type["param"]) == ("invalid_value", "model")
    own = client.get("/services/chat/v1/custom?q=2")
    assert own.json() == {"path": "/v1/custom?q=2", "by": chat.instance_id}
    assert client.get("/services/nobody/v1/x").json()["error"]["code"] == "service_not_found"
    ready = client.get("/readyz").json()
    assert ready["checks"]["gateway:routes"][0]["observedValue"] == 2


def test_a_refused_connection_is_retried_on_another_instance_and_cools_down(upstreams, gateway) -> None:
    first, second = upstreams("chat", ["m"]), upstreams("chat", ["m"])
    client = gateway(first, second, GATEWAY_COOLDOWN_SECONDS="30")
    first.stop()
    answers = [client.post("/v1/chat/completions", json={"model": "m"}) for _ in range(6)]
    assert [answer.status_code for answer in answers] == [200] * 6
    assert {answer.headers["x-nexus-instance"] for answer in answers} == {second.label}
    assert sorted(answer.headers["x-nexus-attempts"] for answer in answers) == ["1"] * 5 + [
        "2"
    ]  # cooled down
    second.stop()  # nothing left: the client hears so, and may retry
    failed = client.post("/v1/chat/completions", json={"model": "m"})
    assert failed.status_code == 503
    assert failed.json()["error"]["code"] == "upstream_unavailable"
    assert failed.headers["retry-after"] == "1"


def test_a_503_is_retried_elsewhere_and_the_last_one_passes_through(upstreams, gateway) -> None:
    busy, ok = upstreams("chat", ["m"], mode="busy"), upstreams("chat", ["m"])
    client = gateway(busy, ok, GATEWAY_COOLDOWN_SECONDS="0", GATEWAY_REFRESH_SECONDS="0.2")
    # ties are broken at random: in 64 requests the busy instance is tried first at least once
    answers = [client.post("/v1/chat/completions", json={"model": "m"}) for _ in range(64)]
    assert {answer.headers["x-nexus-instance"] for answer in answers} == {ok.label}
    assert "2" in {answer.headers["x-nexus-attempts"] for answer in answers}
    ok.stop()
    # a 503 in any case: busy's left for the other, then the refused one (the gateway's own), or the
    # refused one and then busy's, passed on; or busy's alone, if a refresh found the other gone already
    either = client.post("/v1/chat/completions", json={"model": "m"})
    assert (either.status_code, either.headers["x-nexus-attempts"] in ("1", "2")) == (503, True)
    deadline = time.monotonic() + 10  # the refresh finds the stopped one gone: busy alone is left
    while [row["routable"] for row in client.get("/v1/gateway/instances").json()].count(True) != 1:
        assert time.monotonic() < deadline, client.get("/v1/gateway/instances").json()
        time.sleep(0.05)
    for answer in [client.post("/v1/chat/completions", json={"model": "m"}) for _ in range(3)]:
        # the busy instance's own answer: it was the last attempt
        assert answer.status_code == 503
        assert answer.headers["x-nexus-instance"] == busy.label
        assert answer.headers["retry-after"] == "7"
        assert answer.headers["x-should-retry"] == "true"
        assert answer.json()["error"]["message"] == f"{busy.instance_id} is busy"
    metrics = gateway_of(client).metrics
    assert metrics.attempts[("chat", busy.label, "m", "unavailable")] >= 1
    assert metrics.tokens[("chat", "m", "completion")] == 3 * 64


def test_a_keep_alive_connection_the_instance_closes_is_no_failure_of_the_instance(
    upstreams, gateway
) -> None:
    """Each pooled connection is closed by the instance at its second request: the request goes once more,
    on a new connection, and the instance answers every time, never cooled (a single instance would be
    refused: there is no other to try)."""
    closing = upstreams("chat", ["m"], mode="keep-alive")
    client = gateway(closing, GATEWAY_COOLDOWN_SECONDS="60")
    answers = [client.post("/v1/chat/completions", json={"model": "m"}) for _ in range(4)]
    assert [answer.status_code for answer in answers] == [200] * 4
    assert {answer.headers["x-nexus-attempts"] for answer in answers} == {"1"}
    assert len(closing.received) == 4
    (row,) = client.get("/v1/gateway/instances").json()
    assert row["cooling"] is False


def test_a_request_whose_new_connection_drops_is_not_sent_to_that_instance_again(upstreams, gateway) -> None:
    """Closed before an answer on a new connection: the instance may have died of it. Another instance may
    try; the same one does not get it twice (aiohttp's own retry would, for a GET: POST is not idempotent)."""
    dropping = upstreams("chat", ["m"], mode="drop")
    client = gateway(dropping)
    answer = client.post("/v1/chat/completions", json={"model": "m"})
    assert answer.status_code == 503
    assert answer.json()["error"]["code"] == "upstream_unavailable"
    assert len(dropping.received) == 1


def test_a_services_path_goes_on_as_the_client_encoded_it(upstreams, gateway) -> None:
    """Decoded, a %2F in a segment (a model id) would become a separator and a %3F the start of a query."""
    upstream = upstreams("chat", ["m"])
    client = gateway(upstream)
    for sent, received in [
        ("/services/chat/v1/models/org%2Fmodel%20x?q=a%26b=c", "/v1/models/org%2Fmodel%20x?q=a%26b=c"),
        ("/services/chat/v1/x%3Fy", "/v1/x%3Fy"),
        ("/services/chat/v1/caf%C3%A9", "/v1/caf%C3%A9"),
    ]:
        assert client.get(sent).status_code == 200
        assert upstream.received[-1][0] == received
    # routed as service `chat` once decoded: which path was meant?
    for ambiguous in [
        "/services/chat%2Fv1/models",
        "/services/chat%2Fv1",
        "/services%2Fchat/v1",
        "/services/chat%2F/v1",
    ]:
        refused = client.get(ambiguous)
        assert refused.status_code == 400, ambiguous
        assert refused.json()["error"]["code"] == "invalid_path"


def test_a_model_with_an_owner_goes_to_its_service_alone(upstreams, gateway, logs) -> None:
    """GATEWAY_MODEL_OWNERS: a compromised service that lists another's model draws none of its requests."""
    owner, rogue = upstreams("chat", ["m", "shared"]), upstreams("rogue", ["m", "shared"])
    client = gateway(owner, rogue, GATEWAY_MODEL_OWNERS="m=chat", LOG_LEVEL="WARNING")
    answers = [client.post("/v1/chat/completions", json={"model": "m"}) for _ in range(12)]
    assert {answer.headers["x-nexus-instance"] for answer in answers} == {owner.label}
    # a model not named goes to whoever lists it
    shared = [client.post("/v1/chat/completions", json={"model": "shared"}) for _ in range(24)]
    assert {answer.headers["x-nexus-instance"] for answer in shared} == {owner.label, rogue.label}
    logs.wait_for(
        lambda line: (
            line["message"]
            == f"instance {rogue.label} lists model m, which GATEWAY_MODEL_OWNERS gives to chat: none of its "
            "requests go there"
        )
    )
    assert [model["id"] for model in client.get("/v1/models").json()["data"]] == ["m", "shared"]


@pytest.mark.parametrize(
    ("value", "refused"),
    [("m=chat,m=speech", "'m' is given to chat and to speech"), ("m=chat,m=chat,n=speech", None)],
)
def test_model_owners_read_one_way(value: str, refused: str | None) -> None:
    settings = GatewaySettings(gateway_model_owners=value)
    if refused is None:
        assert model_owners(settings) == {"m": "chat", "n": "speech"}
    else:
        with pytest.raises(ConfigError, match=refused):
            model_owners(settings)


def test_a_redirect_goes_back_to_the_client_never_followed(upstreams, gateway) -> None:
    """Following it would fetch an internal address from the gateway's network, with the gateway's key."""
    redirecting = upstreams("chat", ["m"], mode="redirect")
    answer = gateway(redirecting).post("/v1/chat/completions", json={"model": "m"}, follow_redirects=False)
    assert answer.status_code == 307
    assert answer.headers["location"] == "http://127.0.0.1:9/latest/meta-data"
    assert answer.headers["x-nexus-instance"] == redirecting.label


def test_streams_pass_through_and_a_broken_one_ends_with_an_error_event(upstreams, gateway) -> None:
    streaming, breaking = upstreams("chat", ["s"], mode="stream"), upstreams("other", ["b"], mode="break")
    client = gateway(streaming, breaking)
    with client.stream("POST", "/v1/chat/completions", json={"model": "s", "stream": True}) as answer:
        assert answer.headers["content-type"].startswith("text/event-stream")
        events = [line for line in answer.iter_lines() if line]
    assert events[:3] == ['data: {"n": 0}', 'data: {"n": 1}', 'data: {"n": 2}']
    assert events[3:] == [
        'data: {"choices": [], "usage": {"prompt_tokens": 4, "completion_tokens": 5}}',
        "data: [DONE]",
    ]
    # the stream's usage is counted as a whole answer's is
    tokens = gateway_of(client).metrics.tokens
    assert (tokens[("chat", "s", "prompt")], tokens[("chat", "s", "completion")]) == (4, 5)
    with client.stream("POST", "/v1/chat/completions", json={"model": "b", "stream": True}) as answer:
        assert answer.status_code == 200
        events = [line for line in answer.iter_lines() if line.startswith("data: ")]
    assert events[0] == 'data: {"n": 0}'
    error = json.loads(events[-1].removeprefix("data: "))["error"]
    assert error["code"] == "upstream_error"
    assert breaking.label in error["message"]
    families = {family.name: family for family in gateway_of(client).metrics.families()}
    outcomes = {dict(labels)["outcome"] for _, labels, _ in families["nexus_gateway_requests"].samples}
    assert outcomes == {"ok", "broken"}
    assert families["nexus_gateway_time_to_first_byte_seconds"].samples
    scraped = client.get("/metrics").text
    assert (
        f'nexus_gateway_requests_total{{service="other",instance="{breaking.label}",model="b",outcome="broken"}} 1'
        in scraped
    )


def _kv(key: str, value: object, lease: str = "7") -> KeyValue:
    text = value if isinstance(value, str) else json.dumps(value)
    return KeyValue(
        {"key": base64.b64encode(key.encode()), "value": base64.b64encode(text.encode()), "lease": lease}
    )


def _value(
    name: str, instance: str, base_url: str = "http://10.0.0.1:9000", **changes: object
) -> dict[str, object]:
    value: dict[str, object] = {
        "name": name,
        "base_url": base_url,
        "metadata_url": f"{base_url}/v1/metadata",
        "version": "1.0.0",
        "capabilities": [],
        "instance_id": instance,
        "readiness": "pass",
    }
    return value | changes


def test_only_well_formed_instance_keys_on_live_leases_are_routed() -> None:
    prefix = "/nexus/services/"
    kvs = [
        _kv(f"{prefix}chat/a", _value("chat", "a"), lease="1"),
        _kv(f"{prefix}chat", _value("chat", "a"), lease="1"),  # the service-level hint: never routed
        _kv(f"{prefix}chat/b", _value("chat", "b"), lease="0"),  # no lease
        _kv(f"{prefix}chat/c", _value("chat", "c"), lease="2"),  # a day-long lease
        _kv(f"{prefix}chat/d", _value("other", "d"), lease="3"),  # name differs from the key's
        _kv(f"{prefix}chat/e", _value("chat", "e", base_url="file:///etc"), lease="4"),
        _kv(f"{prefix}chat/f", _value("chat", "f", readiness="fail"), lease="5"),
        _kv(f"{prefix}chat/g", _value("chat", "g"), lease="6"),  # two instance keys on one lease
        _kv(f"{prefix}chat/h", _value("chat", "h"), lease="6"),
        _kv(f"{prefix}chat/i/x", _value("chat", "i"), lease="8"),  # deeper than an instance key
        _kv(f"{prefix}chat/j", "{not json", lease="9"),
        _kv(f"{prefix}chat/k", _value("chat", "k"), lease="10"),  # a lease that is not live
    ]
    granted: dict[str, int | None] = {
        "1": 15,
        "2": 86400,
        "3": 15,
        "4": 15,
        "5": 15,
        "6": 15,
        "8": 15,
        "9": 15,
    }
    granted["10"] = None
    found = registrations(kvs, prefix, granted)
    assert list(found) == [f"{prefix}chat/a"]
    assert found[f"{prefix}chat/a"].base_url == "http://10.0.0.1:9000"


def test_the_static_list_reads_gateway_services_and_every_name_base_url() -> None:
    settings = GatewaySettings(gateway_services="http://a:1/, http://b:2")
    environ = {
        "CHAT_BASE_URL": "http://c:3",
        "SERVICE_BASE_URL": "http://me:9000",  # the gateway's own address
        "EMBED_BASE_URL": "http://a:1",  # a repeat
        "BASE_URL": "http://x",  # no <NAME>_
        "LOWER_base_url": "http://y",
    }
    assert static_urls(settings, environ) == ["http://a:1", "http://b:2", "http://c:3"]
    with pytest.raises(ConfigError, match=r"^CHAT_BASE_URL: 'chat:9000' is not an http"):
        static_urls(settings, {"CHAT_BASE_URL": "chat:9000"})


@pytest.mark.parametrize(
    ("window", "counted"),
    [
        (b'data: {"usage": {"prompt_tokens": 1, "completion_tokens": 2}}\n\ndata: [DONE]\n\n', (1, 2)),
        # OpenAI's chunks before the last carry "usage": null; the last one counts
        (b'data: {"usage": null}\n\ndata: {"usage": {"prompt_tokens": 3}}\n\ndata: [DONE]\n\n', (3, 0)),
        (b'data: {"usage": {"prompt_tokens": 3}}\n\ndata: {"usage": null}\n\n', None),
        (b'tokens": 9}}\n\ndata: [DONE]\n\n', None),  # the window began inside the usage event
        (b'data: {"usage": {"prompt_tokens": 1, "comp', None),  # cut off
        (b'data: {"n": 0}\n\ndata: [DONE]\n\n', None),  # not asked for
    ],
    ids=["last", "null before", "null last", "window cut", "cut off", "none"],
)
def test_a_streams_usage_is_its_last_usage_event(window: bytes, counted: tuple[int, int] | None) -> None:
    usage = _streamed_usage(window)
    found = (usage.prompt_tokens, usage.completion_tokens) if usage is not None else None
    assert found == counted
