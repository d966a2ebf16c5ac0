"""A wrapper in front of Ollama or vLLM, as their clients use it (issue: transparent pass-through): the official
SDK's `extra_body` reaches the backend as sent, streamed and not; strict mode refuses it naming the field;
backend failures are logged once with the backend's words; the answer's usage, model and stream timing
reach the access line and /metrics.

Real uvicorn servers in threads (tests/platform/test_openai_sdk.py's `Server`) in front of
tests/platform/fake_backend.py, which records every body it receives.
"""

import dataclasses
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import openai
import pytest
from nexus_platform import ServiceSpec, create_app
from nexus_platform._edge.asgi import NexusASGI
from nexus_platform.testing import NexusService
from prometheus_client.parser import text_string_to_metric_families

from tests.platform import fake_backend
from tests.platform.conftest import Logs
from tests.platform.test_openai_sdk import USER, Server

pytestmark = pytest.mark.slow  # real uvicorn servers

# what Ollama's and vLLM's clients send beyond OpenAI's fields
EXTRAS: dict[str, Any] = {
    "top_k": 40,
    "options": {"num_ctx": 4096},
    "keep_alive": "5m",
    "repetition_penalty": 1.1,
}


@pytest.fixture(scope="module")
def backend() -> tuple[str, Any]:
    return fake_backend.start()


@pytest.fixture(scope="module")
def wrapper_app(
    nexus_service: NexusService, backend: tuple[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> Callable[..., NexusASGI]:
    facts = tmp_path_factory.mktemp("llm-wrapper") / "service.env"
    facts.write_text(
        "SERVICE_VERSION=1.0.0\nSERVICE_DESCRIPTION=A wrapper\nSERVICE_OWNER=platform-tests\n"
        "SERVICE_CAPABILITIES=chat.completions, embeddings\n"
    )
    identity = dataclasses.replace(nexus_service.identity, backend="openai", facts_file=facts)

    def make(**environment: str) -> NexusASGI:
        # INFO: the access lines are the tests' evidence
        environ = nexus_service.environ(BACKEND_URL=backend[0], LOG_LEVEL="INFO", **environment)
        return create_app(ServiceSpec(), identity, environ)

    return make


@pytest.fixture(scope="module")
def wrapper(wrapper_app: Callable[..., NexusASGI]) -> Iterator[Server]:
    live = Server(wrapper_app())
    yield live
    live.stop()


@pytest.fixture
def client(wrapper: Server) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{wrapper.url}/v1", api_key="not-checked", max_retries=0)


def _received(backend: tuple[str, Any], request_id: str) -> dict[str, Any]:
    """The body the backend received for the request `request_id` (the wrapper forwards the id)."""
    [index] = [at for at, (_, sent_id) in enumerate(backend[1].requests) if sent_id == request_id]
    body: dict[str, Any] = backend[1].bodies[index]
    return body


@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
def test_backend_fields_reach_the_backend_as_sent(
    client: openai.OpenAI, backend: tuple[str, Any], stream: bool
) -> None:
    request_id = f"extras-{stream}"
    answer = client.chat.completions.create(
        model="backend-model",
        messages=USER,
        stream=stream,
        extra_body=EXTRAS,
        extra_headers={"x-request-id": request_id},
    )
    if stream:
        assert "".join(chunk.choices[0].delta.content or "" for chunk in answer) == "Hello from the backend"  # type: ignore[union-attr]  # stream or not: one type per branch
    else:
        assert answer.choices[0].message.content == "Hello from the backend"  # type: ignore[union-attr]  # stream or not: one type per branch
    received = _received(backend, request_id)
    assert {name: received[name] for name in EXTRAS} == EXTRAS
    assert received["messages"] == USER
    assert received["model"] == "backend-model"


def test_unknown_fields_inside_messages_and_tools_pass_too(
    client: openai.OpenAI, backend: tuple[str, Any]
) -> None:
    """Ollama's `images` on a message; a backend's own key in a tool definition."""
    message = {"role": "user", "content": "Describe", "images": ["aGVsbG8="]}
    tool = {"type": "function", "function": {"name": "look", "parameters": {}, "x-priority": 1}}
    client.chat.completions.create(
        model="backend-model",
        messages=[message],  # type: ignore[list-item]  # Ollama's `images`: not in the SDK's types
        tools=[tool],  # type: ignore[list-item]  # a backend's own key: not in the SDK's types
        extra_headers={"x-request-id": "nested-extras"},
    )
    received = _received(backend, "nested-extras")
    assert received["messages"] == [message]
    assert received["tools"] == [tool]


def test_known_fields_are_still_validated_every_problem_listed(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(
            model="backend-model", messages=USER, temperature=5, top_p=2, extra_body={"top_k": 40}
        )
    message = refused.value.message
    assert "`temperature`" in message
    assert "`top_p`" in message
    assert "top_k" not in message
    assert refused.value.body["param"] == "temperature"  # type: ignore[index]  # the SDK types body as object


def test_strict_mode_refuses_an_unknown_field_naming_it(wrapper_app: Callable[..., NexusASGI]) -> None:
    live = Server(wrapper_app(STRICT_OPENAI_FIELDS="true"))
    try:
        client = openai.OpenAI(base_url=f"{live.url}/v1", api_key="x", max_retries=0)
        for stream in (False, True):
            with pytest.raises(openai.BadRequestError) as refused:
                client.chat.completions.create(
                    model="backend-model", messages=USER, stream=stream, extra_body={"top_k": 40}
                )
            assert "`top_k` is not a known field" in refused.value.message
            assert refused.value.body["param"] == "top_k"  # type: ignore[index]  # the SDK types body as object
    finally:
        live.stop()


def test_a_service_s_own_implementations_stay_strict(nexus_service: NexusService, make_identity) -> None:
    """The example service's own chat implementation (no backend): unknown fields are refused by default."""
    live = Server(
        create_app(nexus_service.spec, make_identity(("chat.completions",)), nexus_service.environ())
    )
    try:
        client = openai.OpenAI(base_url=f"{live.url}/v1", api_key="x", max_retries=0)
        with pytest.raises(openai.BadRequestError) as refused:
            client.chat.completions.create(model="example-chat", messages=USER, extra_body={"top_k": 40})
        assert "`top_k` is not a known field" in refused.value.message
    finally:
        live.stop()


@contextmanager
def logged_client(make_app: Callable[..., NexusASGI]) -> Iterator[tuple[openai.OpenAI, Server]]:
    """A client of a wrapper started now: its log lines go to the stdout the test's `logs` captures."""
    live = Server(make_app())
    try:
        yield openai.OpenAI(base_url=f"{live.url}/v1", api_key="x", max_retries=0), live
    finally:
        live.stop()


def test_a_backend_failure_is_logged_once_under_the_request_id(
    logs: Logs, wrapper_app: Callable[..., NexusASGI]
) -> None:
    with logged_client(wrapper_app) as (client, _), pytest.raises(openai.InternalServerError) as failed:
        client.chat.completions.create(
            model="failing-model", messages=USER, extra_headers={"x-request-id": "backend-500"}
        )
    assert failed.value.status_code == 502
    assert failed.value.code == "backend_error"
    lines = logs.wait_for(
        lambda line: line.get("logger") == "nexus.access" and line.get("request_id") == "backend-500"
    )
    warnings = [
        line for line in lines if line.get("request_id") == "backend-500" and line["level"] == "WARNING"
    ]
    assert len(warnings) == 1, warnings
    [warning] = warnings
    assert warning["backend_status"] == 500
    assert "backend says 500" in warning["message"]
    assert warning["backend_error_type"] == "invalid_request_error"
    assert warning["backend_error_code"] == "x"
    assert warning.get("trace_id")


def test_a_backend_4xx_keeps_its_type_code_and_param(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(model="missing-model", messages=USER)
    assert missing.value.body == {
        "message": "backend says 404",
        "type": "invalid_request_error",
        "param": "model",
        "code": "x",
    }


def test_a_vllm_error_keeps_its_message_and_code(client: openai.OpenAI) -> None:
    """vLLM's error `code` is the HTTP status, an integer: the message still reaches the client."""
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model="vllm-error-model", messages=USER)
    assert refused.value.body == {
        "message": "maximum context length is 8192 tokens",
        "type": "BadRequestError",
        "param": None,
        "code": "400",
    }


def test_no_call_to_the_backend_carries_an_empty_request_id(
    client: openai.OpenAI, wrapper: Server, backend: tuple[str, Any]
) -> None:
    """The model list is fetched at start-up and on /v1/models, outside any request of a client."""
    assert [model.id for model in client.models.list()] == ["backend-model"]
    client.chat.completions.create(model="backend-model", messages=USER)
    assert any(path == "/v1/models" for path, _, _ in backend[1].gets)
    assert backend[1].empty_request_ids == []


def test_malformed_json_is_invalid_json_with_its_position(wrapper: Server) -> None:
    answer = httpx.post(
        f"{wrapper.url}/v1/chat/completions",
        content=b'{"model": "backend-model", "messages": [',
        headers={"content-type": "application/json"},
    )
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["code"] == "invalid_json"
    assert "line 1, column 41 (byte 40)" in error["message"]


def test_usage_model_and_first_token_reach_the_access_line_and_metrics(
    logs: Logs, wrapper_app: Callable[..., NexusASGI]
) -> None:
    with logged_client(wrapper_app) as (client, wrapper):
        _usage_model_and_first_token(client, wrapper, logs)


def _usage_model_and_first_token(client: openai.OpenAI, wrapper: Server, logs: Logs) -> None:
    client.chat.completions.create(
        model="backend-model", messages=USER, extra_headers={"x-request-id": "usage-1"}
    )
    stream = client.chat.completions.create(
        model="backend-model",
        messages=USER,
        stream=True,
        stream_options={"include_usage": True},
        extra_headers={"x-request-id": "usage-2"},
    )
    assert [chunk.usage.completion_tokens for chunk in stream if chunk.usage] == [4]
    client.chat.completions.create(model="made-up", messages=USER, extra_headers={"x-request-id": "usage-3"})
    complete, streamed, unlisted = (logs.access(f"usage-{n}") for n in (1, 2, 3))
    assert (complete["model"], complete["prompt_tokens"], complete["completion_tokens"]) == (
        "backend-model",
        1,
        4,
    )
    assert "ttft_ms" not in complete
    assert (streamed["prompt_tokens"], streamed["completion_tokens"]) == (3, 4)
    assert 0 < streamed["ttft_ms"] <= streamed["duration_ms"]
    assert unlisted["model"] == "made-up"

    scraped = httpx.get(f"{wrapper.url}/metrics").text
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(scraped)
        for sample in family.samples
    }
    tokens = "nexus_llm_tokens_total"
    assert samples[(tokens, (("kind", "completion"), ("model", "backend-model")))] >= 8
    assert samples[(tokens, (("kind", "completion"), ("model", "(other)")))] >= 4  # an unlisted model
    assert ("nexus_llm_tokens_total", (("kind", "completion"), ("model", "made-up"))) not in samples
    assert samples[("nexus_llm_time_to_first_token_seconds_count", (("model", "backend-model"),))] >= 1
    assert samples[("nexus_llm_inter_token_latency_seconds_count", (("model", "backend-model"),))] >= 3
    assert samples[("nexus_llm_requests_total", (("model", "backend-model"), ("outcome", "ok")))] >= 2
