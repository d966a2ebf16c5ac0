# Managed by nexus-template: `copier update` replaces this file. Your tests belong in tests/test_service.py.
"""The OpenAI routes driven by the official `openai` SDK against the service on a real uvicorn server.

Live answers are also checked strictly against the SDK's own response types (pydantic models): every
required field present, the right types, and no field the SDK does not know. These tests hold for any
correct implementation of the capabilities, not only for the examples.
"""

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import openai
import pydantic
import pytest
import uvicorn
from litestar import get
from openai.types import ImagesResponse, Model

from app.nexus import ServiceError, ServiceSpec
from app.nexus.asgi import NexusASGI
from app.nexus.capabilities import IMPLEMENTATIONS
from app.nexus.factory import create_app
from app.service import service
from tests.nexus_fixtures import QUIET, free_port

USER = [{"role": "user", "content": "Say hello"}]


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
    """A model the capability serves: the first it lists."""
    models = getattr(IMPLEMENTATIONS[capability], "MODELS", ())
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
