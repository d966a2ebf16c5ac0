# Managed by nexus-template: `copier update` replaces this file. Your tests belong in tests/test_service.py.
"""The OpenAI routes driven by the official `openai` SDK against the service on a real uvicorn server.

Live answers are also checked strictly against the SDK's own response types (pydantic models): every
required field present, the right types, and no field the SDK does not know. These tests hold for any
correct implementation of the capabilities (a wrapper service: the backend in tests/fake_backend.py), not
only for the examples. The tests of a capability run when release/service.env offers it.
"""

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import msgspec
import openai
import pydantic
import pytest
import uvicorn
from litestar import get
from openai.types import CreateEmbeddingResponse, ImagesResponse, Model
from openai.types.chat import ChatCompletion, ChatCompletionChunk, ChatCompletionMessageParam

from app.nexus import ConfigError, ServiceError, ServiceSpec
from app.nexus._asgi import NexusASGI
from app.nexus._capabilities import BACKEND, implementations
from app.nexus._factory import create_app
from app.service import service
from tests.nexus_fixtures import QUIET, free_port

USER: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Say hello"}]
try:
    OFFERED, UNSERVED = implementations(service.route_handlers), ""
except ConfigError as error:  # one failing test below says why, instead of an error collecting the module
    OFFERED, UNSERVED = {}, str(error)


def test_every_offered_capability_has_its_implementation() -> None:
    assert not UNSERVED, UNSERVED


def offers(capability: str) -> pytest.MarkDecorator:
    return pytest.mark.skipif(
        capability not in OFFERED, reason=f"release/service.env does not offer {capability}"
    )


wraps_a_backend = pytest.mark.skipif(BACKEND != "openai", reason="the service does not wrap a backend")


class Server:
    """`app` served by uvicorn in a thread on a free port."""

    def __init__(self, app: NexusASGI) -> None:
        self.url = f"http://127.0.0.1:{free_port()}"
        port = int(self.url.rsplit(":", 1)[1])
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive(), "uvicorn did not start"
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    live = Server(create_app(service, environ=QUIET))
    yield live
    live.stop()


@pytest.fixture
def client(server: Server) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="not-checked", max_retries=0)


def model_for(capability: str) -> str:
    """A model the capability serves: the first it lists, or the backend's (a wrapper service)."""
    models = getattr(OFFERED[capability], "MODELS", ())
    return models[0].id if models else "backend-model"


def extra_fields(value: Any, where: str = "$") -> list[str]:
    """Paths of the fields the SDK's models received but do not declare."""
    if isinstance(value, pydantic.BaseModel):
        found = [f"{where}.{name}" for name in value.__pydantic_extra__ or {}]
        for name in type(value).model_fields:
            found += extra_fields(getattr(value, name), f"{where}.{name}")
        return found
    if isinstance(value, list):
        return [path for index, item in enumerate(value) for path in extra_fields(item, f"{where}[{index}]")]
    return []


def assert_conforms(model_type: type[pydantic.BaseModel], data: Any) -> pydantic.BaseModel:
    """`data` (decoded JSON) is a valid `model_type`, strictly, with no undeclared field."""
    parsed = model_type.model_validate(data, strict=True)
    assert not extra_fields(parsed), f"fields the SDK does not know: {extra_fields(parsed)}"
    return parsed


def test_models_list(client: openai.OpenAI, server: Server) -> None:
    listed = list(client.models.list())
    raw = httpx.get(f"{server.url}/v1/models").json()
    assert [model.id for model in listed] == [model["id"] for model in raw["data"]]
    for model in raw["data"]:
        assert_conforms(Model, model)


@offers("chat.completions")
def test_chat_completion(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(model=model_for("chat.completions"), messages=USER)
    assert raw.http_response.status_code == 200
    completion = raw.parse()
    assert completion.choices and completion.choices[0].message.role == "assistant"
    assert completion._request_id == raw.headers["x-request-id"]
    assert_conforms(ChatCompletion, raw.http_response.json())


@offers("chat.completions")
def test_chat_completion_stream(client: openai.OpenAI, server: Server) -> None:
    chunks = list(
        client.chat.completions.create(model=model_for("chat.completions"), messages=USER, stream=True)
    )
    assert chunks, "the stream had no chunks"
    assert "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    body = {"model": model_for("chat.completions"), "messages": USER, "stream": True}
    with httpx.stream("POST", f"{server.url}/v1/chat/completions", json=body) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [line.removeprefix("data: ") for line in response.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    for event in events[:-1]:
        assert_conforms(ChatCompletionChunk, msgspec.json.decode(event))


@offers("chat.completions")
def test_chat_errors_are_the_sdk_classes(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(model="missing-model", messages=USER)
    assert missing.value.status_code == 404
    assert missing.value.param == "model"
    assert missing.value.request_id
    with pytest.raises(openai.BadRequestError) as invalid:
        client.chat.completions.create(model=model_for("chat.completions"), messages=USER, temperature=5)
    assert invalid.value.type == "invalid_request_error"
    assert invalid.value.code == "invalid_value"
    assert invalid.value.param == "temperature"
    assert "`temperature`" in invalid.value.message


@offers("chat.completions")
@wraps_a_backend
def test_backend_errors_map_to_honest_statuses(client: openai.OpenAI) -> None:
    with pytest.raises(openai.InternalServerError) as failing:
        client.chat.completions.create(model="failing-model", messages=USER)
    assert failing.value.status_code == 502
    assert failing.value.code == "backend_error"
    with pytest.raises(openai.InternalServerError) as busy:
        client.chat.completions.create(model="busy-model", messages=USER)
    assert busy.value.status_code == 503
    assert busy.value.response.headers["retry-after"] == "1"


@offers("chat.completions")
@wraps_a_backend
def test_the_request_id_reaches_the_backend(client: openai.OpenAI) -> None:
    from tests.nexus_fixtures import BACKEND_REQUESTS

    completion = client.chat.completions.create(
        model="backend-model", messages=USER, extra_headers={"x-request-id": "trace-me-42"}
    )
    assert completion._request_id == "trace-me-42"
    assert ("/v1/chat/completions", "trace-me-42") in BACKEND_REQUESTS.requests


@offers("chat.completions")
@wraps_a_backend
def test_a_backend_stream_that_breaks_off_ends_with_an_error_event(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(model="broken-stream-model", messages=USER, stream=True)
    received: list[str | None] = []
    with pytest.raises(openai.APIError) as broken:
        received.extend(chunk.choices[0].delta.content for chunk in stream)
    assert received == ["Hello"]  # passed through before the break
    assert "broke off" in broken.value.message
    assert broken.value.code == "backend_error"


@offers("chat.completions")
@wraps_a_backend
def test_a_slow_backend_is_a_504_the_sdk_does_not_retry() -> None:
    from tests.nexus_fixtures import BACKEND_REQUESTS

    live = Server(create_app(service, environ={**QUIET, "BACKEND_TIMEOUT_SECONDS": "0.5"}))
    try:
        client = openai.OpenAI(base_url=f"{live.url}/v1", api_key="x", max_retries=2)
        with pytest.raises(openai.InternalServerError) as slow:
            client.chat.completions.create(
                model="slow-model", messages=USER, extra_headers={"x-request-id": "slow-1"}
            )
        assert slow.value.status_code == 504
        assert slow.value.code == "backend_timeout"
        assert BACKEND_REQUESTS.requests.count(("/v1/chat/completions", "slow-1")) == 1
    finally:
        live.stop()


@offers("embeddings")
def test_embeddings(client: openai.OpenAI, server: Server) -> None:
    # the SDK asks for base64 and decodes it to floats
    result = client.embeddings.create(model=model_for("embeddings"), input=["one", "two"])
    assert [item.index for item in result.data] == [0, 1]
    assert all(item.embedding for item in result.data)
    body = {"model": model_for("embeddings"), "input": "one"}
    assert_conforms(CreateEmbeddingResponse, httpx.post(f"{server.url}/v1/embeddings", json=body).json())


@offers("audio.speech")
def test_audio_speech(client: openai.OpenAI) -> None:
    audio = client.audio.speech.create(model=model_for("audio.speech"), voice="alloy", input="Hello there")
    assert audio.response.headers["content-type"] == "audio/mpeg"
    assert audio.content


@offers("images.generations")
def test_images_generate(client: openai.OpenAI, server: Server) -> None:
    images = client.images.generate(
        model=model_for("images.generations"), prompt="a lighthouse", response_format="b64_json"
    )
    assert images.data and images.data[0].b64_json
    body = {"model": model_for("images.generations"), "prompt": "a lighthouse"}
    assert_conforms(ImagesResponse, httpx.post(f"{server.url}/v1/images/generations", json=body).json())


# --- retries: the SDK retries 503, never 504 or 500 (X-Should-Retry: false) --------------------------


@pytest.fixture(scope="module")
def flaky_server() -> Iterator[tuple[Server, dict[str, int]]]:
    calls = {"busy": 0, "slow": 0, "broken": 0}

    @get("/v1/test/busy-once", tags=["test"])
    async def busy_once() -> dict[str, int]:
        calls["busy"] += 1
        if calls["busy"] == 1:
            raise ServiceError(503, "overloaded", "busy, retry")
        return calls

    @get("/v1/test/slow", tags=["test"])
    async def slow() -> dict[str, int]:
        calls["slow"] += 1
        await asyncio.sleep(5)
        return calls

    @get("/v1/test/broken", tags=["test"])
    async def broken() -> dict[str, int]:
        calls["broken"] += 1
        raise RuntimeError("a bug")

    spec = ServiceSpec(route_handlers=[busy_once, slow, broken])
    environment = {**QUIET, "REQUEST_TIMEOUT_SECONDS": "0.5", "LOG_LEVEL": "CRITICAL"}
    live = Server(create_app(spec, environ=environment))
    yield live, calls
    live.stop()


def sdk_get(server: Server) -> Callable[[str], object]:
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=2)
    return lambda path: client.get(path, cast_to=object)


def test_the_sdk_retries_503(flaky_server: tuple[Server, dict[str, int]]) -> None:
    server, calls = flaky_server
    assert sdk_get(server)("/test/busy-once") == {**calls, "busy": 2}
    assert calls["busy"] == 2


@pytest.mark.parametrize(("path", "status"), [("/test/slow", 504), ("/test/broken", 500)])
def test_the_sdk_does_not_retry_504_or_500(
    flaky_server: tuple[Server, dict[str, int]], path: str, status: int
) -> None:
    server, calls = flaky_server
    with pytest.raises(openai.InternalServerError) as failed:
        sdk_get(server)(path)
    assert failed.value.status_code == status
    assert failed.value.response.headers["x-should-retry"] == "false"
    assert calls[path.rsplit("/", 1)[1]] == 1
