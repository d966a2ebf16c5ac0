"""AI services: capabilities render OpenAI routes, and a wrapper (backend: openai) forwards to a backend.

The wrapper is tested the way it runs: a rendered `ai-backend` service (`python -m app`) in front of a
rendered `ai-local` service acting as the OpenAI-compatible backend, both real uvicorn processes, driven
with the official `openai` SDK.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
import yaml
from openai.types.chat import ChatCompletionMessageParam

from devtools.live import LiveService, free_port
from devtools.render import answer_sets, run_python
from extensions.context import OPENAI_CAPABILITIES, openai_capabilities
from tests.edits import edit_file
from tests.platform import fake_backend

pytestmark = pytest.mark.xdist_group("ai")
USER: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hello backend"}]
ROUTES = {
    "chat.completions": "/v1/chat/completions",
    "embeddings": "/v1/embeddings",
    "audio.speech": "/v1/audio/speech",
    "images.generations": "/v1/images/generations",
}


def test_the_template_serves_exactly_the_capabilities_the_extension_knows(rendered) -> None:
    script = (
        "from nexus_platform.openai._capabilities import REQUIRED_NAMES, module_path;"
        "from nexus_platform.openai._routes import ROUTES;"
        "print(sorted(ROUTES)); print(sorted(REQUIRED_NAMES)); print(sorted(map(module_path, ROUTES)))"
    )
    result = run_python(rendered("ai-local"), "-c", script)
    assert result.returncode == 0, result.stderr
    routes, checked, paths = result.stdout.splitlines()
    assert routes == checked == str(sorted(OPENAI_CAPABILITIES))
    assert paths == str(sorted(f"app/capabilities/{module}.py" for module in OPENAI_CAPABILITIES.values()))


@pytest.mark.parametrize("name", answer_sets())
def test_capabilities_render_routes_and_service_owned_implementations(rendered, name: str) -> None:
    service = rendered(name)
    answers = yaml.safe_load((service / ".copier-answers.yml").read_text())  # defaults included
    facts = (service / "release" / "service.env").read_text()  # the capabilities are the service's facts
    line = re.search(r"^SERVICE_CAPABILITIES=(.*)$", facts, re.MULTILINE)
    assert line, facts
    listed = line.group(1)
    chosen = openai_capabilities([name for name in listed.split(",") if name])
    wrapper = answers.get("backend") == "openai"
    for capability, module in OPENAI_CAPABILITIES.items():
        implementation = service / "app" / "capabilities" / f"{module}.py"
        assert implementation.is_file() is (capability in chosen and not wrapper), implementation
        if implementation.is_file():
            assert not implementation.read_text().startswith("# Managed by nexus-template")
    script = (
        "import json; from app.main import create_app; app = create_app();"
        "print(json.dumps(sorted(r.path for r in app.app.routes)))"  # NexusASGI > Litestar
    )
    result = run_python(service, "-c", script, GPU_MIN_COUNT="0")
    assert result.returncode == 0, result.stderr
    paths = set(json.loads(result.stdout.splitlines()[-1]))
    for capability, path in ROUTES.items():
        # a gateway serves every OpenAI route, forwarding by model (nexus_platform.gateway)
        served = capability in chosen or answers.get("role") == "gateway"
        assert (path in paths) is served, (capability, path)


@pytest.fixture(scope="module")
def pair(rendered, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveService, LiveService]]:
    """(backend, wrapper): ai-local serving, ai-backend forwarding to it."""
    logs = tmp_path_factory.mktemp("ai-pair")
    backend = LiveService(rendered("ai-local"), logs, environment={"DRAIN_SECONDS": "0"})
    wrapper = LiveService(
        rendered("ai-backend"),
        logs,
        environment={"DRAIN_SECONDS": "0", "BACKEND_URL": backend.url, "READINESS_CACHE_SECONDS": "0"},
    )
    yield backend, wrapper
    wrapper.stop()
    backend.stop()


def sdk(service: LiveService) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{service.url}/v1", api_key="not-checked", max_retries=0)


def test_the_wrapper_lists_and_serves_the_backends_models(pair) -> None:
    backend, wrapper = pair
    assert [model.id for model in sdk(wrapper).models.list()] == [m.id for m in sdk(backend).models.list()]
    ready = httpx.get(f"{wrapper.url}/readyz").json()
    assert ready["status"] == "pass"
    assert ready["checks"]["backend:responseTime"][0]["status"] == "pass"


def test_chat_passes_through_with_and_without_stream(pair) -> None:
    backend, wrapper = pair
    direct = sdk(backend).chat.completions.create(model="example-chat", messages=USER)
    wrapped = sdk(wrapper).chat.completions.with_raw_response.create(
        model="example-chat", messages=USER, extra_headers={"x-request-id": "wrapped-42"}
    )
    assert wrapped.parse().choices[0].message.content == direct.choices[0].message.content
    assert wrapped.headers["x-request-id"] == "wrapped-42"
    chunks = list(sdk(wrapper).chat.completions.create(model="example-chat", messages=USER, stream=True))
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert text == direct.choices[0].message.content
    time.sleep(0.2)
    backend_ids = [
        json.loads(line).get("request_id") for line in backend.log().splitlines() if '"nexus.access"' in line
    ]
    assert "wrapped-42" in backend_ids  # the request id reached the backend


def test_embeddings_speech_and_images_pass_through(pair) -> None:
    backend, wrapper = pair
    embedded = sdk(wrapper).embeddings.create(model="example-embedding", input=["a", "b"])
    assert [item.embedding for item in embedded.data] == [
        item.embedding
        for item in sdk(backend).embeddings.create(model="example-embedding", input=["a", "b"]).data
    ]
    speech = sdk(wrapper).audio.speech.create(
        model="example-tts", voice="alloy", input="hi", response_format="wav"
    )
    assert speech.response.headers["content-type"] == "audio/wav"
    assert speech.content.startswith(b"RIFF")
    images = sdk(wrapper).images.generate(model="example-image", prompt="a cat", response_format="b64_json")
    assert images.data
    assert images.data[0].b64_json


def test_backend_errors_keep_their_class_code_and_param(pair) -> None:
    _, wrapper = pair
    with pytest.raises(openai.NotFoundError) as missing:
        sdk(wrapper).chat.completions.create(model="no-such-model", messages=USER)
    assert missing.value.code == "model_not_found"
    assert missing.value.param == "model"
    with pytest.raises(openai.BadRequestError) as invalid:
        sdk(wrapper).embeddings.create(model="example-embedding", input="a", dimensions=999)
    assert invalid.value.param == "dimensions"


def test_the_model_list_outlives_a_backend_outage(pair) -> None:
    """Runs last among the pair's tests: it stops the backend."""
    backend, wrapper = pair
    listed = httpx.get(f"{wrapper.url}/v1/models").json()
    backend.stop()
    assert httpx.get(f"{wrapper.url}/v1/models").json() == listed  # the cached list (30 s)
    assert httpx.get(f"{wrapper.url}/readyz").status_code == 503
    with pytest.raises(openai.InternalServerError) as down:
        sdk(wrapper).embeddings.create(model="example-embedding", input="a")
    assert down.value.code == "backend_unavailable"


def test_a_wrapper_whose_backend_is_down_says_so(rendered, tmp_path: Path) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    wrapper = LiveService(
        rendered("ai-backend"), tmp_path, environment={"DRAIN_SECONDS": "0", "BACKEND_URL": closed}
    )
    try:
        with pytest.raises(openai.InternalServerError) as down:
            sdk(wrapper).chat.completions.create(model="example-chat", messages=USER)
        assert down.value.status_code == 503
        assert down.value.code == "backend_unavailable"
        assert down.value.response.headers["retry-after"] == "1"
        models = httpx.get(f"{wrapper.url}/v1/models")
        assert models.status_code == 503
        assert models.json()["error"]["code"] == "backend_unavailable"
        assert httpx.get(f"{wrapper.url}/readyz").status_code == 503
        assert closed not in down.value.message + models.text  # backend addresses are not published
    finally:
        wrapper.stop()


OWN_ROUTE_HANDLER = """

@post("/v1/chat/completions", status_code=200)
async def own_chat(data: dict) -> dict:
    return {"own": True}
"""
CALL_OWN_ROUTE = """
from litestar.testing import TestClient
from app.main import create_app

with TestClient(create_app()) as client:
    print(client.post("/v1/chat/completions", json={}).json(), client.post("/v1/embeddings", json={}).status_code)
"""


def serve_own_chat_route(service: Path) -> None:
    """app/service.py gets a /v1/chat/completions handler of its own, in its route_handlers."""
    edit_file(
        service / "app" / "service.py",
        ("\n\nservice = ServiceSpec(", OWN_ROUTE_HANDLER + "\n\nservice = ServiceSpec("),
        ("route_handlers=[echo],", "route_handlers=[echo, own_chat],"),
    )


def test_a_service_that_already_serves_a_capability_route_keeps_it(rendered, tmp_path: Path) -> None:
    """A service written before capabilities rendered routes (its own /v1/chat/completions in
    app/service.py) still starts after the update, and its route answers."""
    service = shutil.copytree(rendered("ai-local"), tmp_path / "service")
    serve_own_chat_route(service)
    result = run_python(service, "-c", CALL_OWN_ROUTE)
    assert result.returncode == 0, result.stderr
    assert "{'own': True} 400" in result.stdout  # its own chat route; the platform's embeddings route
    assert "app/service.py serves /v1/chat/completions itself" in result.stdout


def test_an_offered_capability_without_its_module_stops_start_up_with_one_line(
    rendered, tmp_path: Path
) -> None:
    """release/service.env offers chat.completions: its module missing or incomplete is a start-up error
    naming the file, not a 500 at the first request; a service serving the route itself needs none."""
    service = shutil.copytree(rendered("ai-local"), tmp_path / "service")
    module = service / "app" / "capabilities" / "chat_completions.py"
    edit_file(module, ("\nasync def stream(", "\nasync def _stream("))
    incomplete = run_python(service, "-m", "app", GPU_MIN_COUNT="0", timeout=60)
    assert incomplete.returncode == 2
    assert "app/capabilities/chat_completions.py implements chat.completions but does not define stream" in (
        incomplete.stdout + incomplete.stderr
    )
    assert "Traceback" not in incomplete.stderr
    module.unlink()
    missing = run_python(service, "-m", "app", GPU_MIN_COUNT="0", timeout=60)
    assert missing.returncode == 2
    assert (
        "release/service.env offers chat.completions, but app/capabilities/chat_completions.py does not exist"
        in missing.stdout + missing.stderr
    )
    assert "Traceback" not in missing.stderr
    serve_own_chat_route(service)
    own = run_python(service, "-c", CALL_OWN_ROUTE)
    assert own.returncode == 0, own.stderr
    assert "{'own': True} 400" in own.stdout


def test_a_default_wrapper_waits_for_a_long_generation_and_takes_a_long_context(
    rendered, tmp_path: Path
) -> None:
    """Model-sized defaults (nexus_platform/_sizing.py): a rendered wrapper with no limit set
    completes a non-streamed answer that takes 90 s at the backend (1,800 tokens at 20 tokens/s) and
    accepts a 4 MiB chat body (a long context, a base64 image)."""
    backend_url, backend = fake_backend.start()
    wrapper = LiveService(
        rendered("ai-backend"), tmp_path, environment={"DRAIN_SECONDS": "0", "BACKEND_URL": backend_url}
    )
    try:
        client = openai.OpenAI(base_url=f"{wrapper.url}/v1", api_key="x", max_retries=0, timeout=150)
        long_context = "word " * ((4 << 20) // 5)  # 4 MiB
        answer = client.chat.completions.create(
            model="backend-model", messages=[{"role": "user", "content": long_context}]
        )
        assert answer.choices[0].message.content == "Hello from the backend"
        assert len(backend.bodies[-1]["messages"][0]["content"]) == len(long_context)
        started = time.monotonic()
        slow = client.chat.completions.create(model="sleep-90", messages=[{"role": "user", "content": "hi"}])
        assert slow.choices[0].message.content == "Hello from the backend"
        assert time.monotonic() - started >= 90
    finally:
        wrapper.stop()
