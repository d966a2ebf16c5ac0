"""The OpenAI routes driven by the official `openai` SDK against apps on a real uvicorn server (in a thread):
the example service's capability modules, and a wrapper (Identity.backend "openai") in front of the
backend in tests/platform/fake_backend.py.

Live answers are also checked strictly against the SDK's own response types (pydantic models): every
required field present, the right types, and no field the SDK does not know.
"""

import asyncio
import dataclasses
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
from nexus_platform import ServiceError, ServiceSpec, create_app
from nexus_platform._edge.asgi import NexusASGI
from nexus_platform.testing import NexusService, free_port
from openai.types import CreateEmbeddingResponse, ImagesResponse, Model
from openai.types.chat import ChatCompletion, ChatCompletionChunk, ChatCompletionMessageParam

from tests.platform import fake_backend
from tests.platform.example.capabilities import audio_speech

pytestmark = pytest.mark.slow  # real uvicorn servers
USER: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Say hello"}]
MODELS = {
    "chat.completions": "test-chat",
    "embeddings": "test-embed",
    "audio.speech": "test-tts",
    "images.generations": "test-image",
}


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
            assert time.monotonic() < deadline, "uvicorn did not start"
            assert self.thread.is_alive(), "uvicorn stopped"
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


@pytest.fixture(scope="module")
def server(nexus_service: NexusService) -> Iterator[Server]:
    live = Server(nexus_service.create_app())
    yield live
    live.stop()


@pytest.fixture(scope="module")
def backend() -> tuple[str, Any]:
    """The fake OpenAI-compatible backend: its URL and its handler class (which records requests)."""
    return fake_backend.start()


@pytest.fixture(scope="module")
def wrapper_app(
    nexus_service: NexusService, backend: tuple[str, Any], tmp_path_factory
) -> Callable[..., NexusASGI]:
    """wrapper_app(**environment) -> a wrapper service's app (every capability forwarded to the backend)."""
    facts = tmp_path_factory.mktemp("wrapper") / "service.env"
    facts.write_text(
        "SERVICE_VERSION=1.0.0\nSERVICE_DESCRIPTION=A wrapper\nSERVICE_OWNER=platform-tests\n"
        "SERVICE_CAPABILITIES=chat.completions, embeddings, audio.speech, images.generations\n"
    )
    identity = dataclasses.replace(nexus_service.identity, backend="openai", facts_file=facts)

    def make(**environment: str) -> NexusASGI:
        return create_app(
            ServiceSpec(), identity, nexus_service.environ(BACKEND_URL=backend[0], **environment)
        )

    return make


@pytest.fixture(scope="module")
def wrapper(wrapper_app: Callable[..., NexusASGI]) -> Iterator[Server]:
    live = Server(wrapper_app())
    yield live
    live.stop()


@pytest.fixture(params=["example", "wrapper"])
def served(request: pytest.FixtureRequest) -> Server:
    """The example service's own capabilities, then the same routes forwarded to a backend."""
    server: Server = request.getfixturevalue("server" if request.param == "example" else "wrapper")
    return server


@pytest.fixture
def client(served: Server) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{served.url}/v1", api_key="not-checked", max_retries=0)


@pytest.fixture
def wrapper_client(wrapper: Server) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{wrapper.url}/v1", api_key="not-checked", max_retries=0)


@pytest.fixture
def model_for(served: Server, wrapper: Server) -> Callable[[str], str]:
    """A model the capability serves: the example's, or the backend's (the wrapper)."""
    return lambda capability: "backend-model" if served is wrapper else MODELS[capability]


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


def test_models_list(client: openai.OpenAI, served: Server) -> None:
    listed = list(client.models.list())
    raw = httpx.get(f"{served.url}/v1/models").json()
    assert [model.id for model in listed] == [model["id"] for model in raw["data"]]
    for model in raw["data"]:
        assert_conforms(Model, model)


def test_chat_completion(client: openai.OpenAI, model_for: Callable[[str], str]) -> None:
    raw = client.chat.completions.with_raw_response.create(model=model_for("chat.completions"), messages=USER)
    assert raw.http_response.status_code == 200
    completion = raw.parse()
    assert completion.choices
    assert completion.choices[0].message.role == "assistant"
    assert completion._request_id == raw.headers["x-request-id"]
    assert_conforms(ChatCompletion, raw.http_response.json())


def test_chat_completion_stream(
    client: openai.OpenAI, served: Server, model_for: Callable[[str], str]
) -> None:
    chunks = list(
        client.chat.completions.create(model=model_for("chat.completions"), messages=USER, stream=True)
    )
    assert chunks, "the stream had no chunks"
    assert "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    body = {"model": model_for("chat.completions"), "messages": USER, "stream": True}
    with httpx.stream("POST", f"{served.url}/v1/chat/completions", json=body) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [line.removeprefix("data: ") for line in response.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    for event in events[:-1]:
        assert_conforms(ChatCompletionChunk, msgspec.json.decode(event))


def test_chat_errors_are_the_sdk_classes(client: openai.OpenAI, model_for: Callable[[str], str]) -> None:
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


def test_backend_errors_map_to_honest_statuses(wrapper_client: openai.OpenAI) -> None:
    client = wrapper_client
    with pytest.raises(openai.InternalServerError) as failing:
        client.chat.completions.create(model="failing-model", messages=USER)
    assert failing.value.status_code == 502
    assert failing.value.code == "backend_error"
    with pytest.raises(openai.InternalServerError) as busy:
        client.chat.completions.create(model="busy-model", messages=USER)
    assert busy.value.status_code == 503
    assert busy.value.response.headers["retry-after"] == "1"


def test_the_request_id_reaches_the_backend(wrapper_client: openai.OpenAI, backend: tuple[str, Any]) -> None:
    completion = wrapper_client.chat.completions.create(
        model="backend-model", messages=USER, extra_headers={"x-request-id": "trace-me-42"}
    )
    assert completion._request_id == "trace-me-42"
    assert ("/v1/chat/completions", "trace-me-42") in backend[1].requests


def test_a_backend_stream_that_breaks_off_ends_with_an_error_event(wrapper_client: openai.OpenAI) -> None:
    stream = wrapper_client.chat.completions.create(model="broken-stream-model", messages=USER, stream=True)
    received: list[str | None] = []
    with pytest.raises(openai.APIError) as broken:
        received.extend(chunk.choices[0].delta.content for chunk in stream)
    assert received == ["Hello"]  # passed through before the break
    assert "broke off" in broken.value.message
    assert broken.value.code == "backend_error"


def test_a_slow_backend_is_a_504_the_sdk_does_not_retry(
    wrapper_app: Callable[..., NexusASGI], backend: tuple[str, Any]
) -> None:
    live = Server(wrapper_app(BACKEND_TIMEOUT_SECONDS="0.5"))
    try:
        client = openai.OpenAI(base_url=f"{live.url}/v1", api_key="x", max_retries=2)
        with pytest.raises(openai.InternalServerError) as slow:
            client.chat.completions.create(
                model="slow-model", messages=USER, extra_headers={"x-request-id": "slow-1"}
            )
        assert slow.value.status_code == 504
        assert slow.value.code == "backend_timeout"
        assert backend[1].requests.count(("/v1/chat/completions", "slow-1")) == 1
    finally:
        live.stop()


def test_embeddings(client: openai.OpenAI, served: Server, model_for: Callable[[str], str]) -> None:
    # the SDK asks for base64 and decodes it to floats
    result = client.embeddings.create(model=model_for("embeddings"), input=["one", "two"])
    assert [item.index for item in result.data] == [0, 1]
    assert all(item.embedding for item in result.data)
    body = {"model": model_for("embeddings"), "input": "one"}
    assert_conforms(CreateEmbeddingResponse, httpx.post(f"{served.url}/v1/embeddings", json=body).json())


def test_audio_speech(
    client: openai.OpenAI, served: Server, wrapper: Server, model_for: Callable[[str], str]
) -> None:
    """In the format and voice the implementation declares (the example: WAV only); the backend's mp3."""
    wrapped = served is wrapper
    assert audio_speech.FORMATS == ("wav",)
    audio = client.audio.speech.create(
        model=model_for("audio.speech"),
        voice="alloy" if wrapped else audio_speech.VOICES[0],
        input="Hello there",
        response_format="mp3" if wrapped else "wav",
    )
    assert audio.response.headers["content-type"] == ("audio/mpeg" if wrapped else "audio/wav")
    assert audio.content


def test_images_generate(client: openai.OpenAI, served: Server, model_for: Callable[[str], str]) -> None:
    images = client.images.generate(
        model=model_for("images.generations"), prompt="a lighthouse", response_format="b64_json"
    )
    assert images.data
    assert images.data[0].b64_json
    body = {"model": model_for("images.generations"), "prompt": "a lighthouse", "response_format": "b64_json"}
    assert_conforms(ImagesResponse, httpx.post(f"{served.url}/v1/images/generations", json=body).json())


# --- retries: the SDK retries 503, never 504 or 500 (X-Should-Retry: false) --------------------------


@pytest.fixture(scope="module")
def flaky_server(nexus_service: NexusService) -> Iterator[tuple[Server, dict[str, int]]]:
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
    live = Server(nexus_service.create_app(spec, {"REQUEST_TIMEOUT_SECONDS": "0.5", "LOG_LEVEL": "CRITICAL"}))
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
