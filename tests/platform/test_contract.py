"""The platform's endpoints, errors, request ids and configuration, on apps built around the example
service (what nexus_platform.testing.ContractTests checks on a service's own app, and the variants)."""

import asyncio
import re
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Annotated

import msgspec
import pytest
from litestar import get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody
from litestar.testing import TestClient
from nexus_platform import SECRET, CheckResult, ConfigError, NexusContext, PlatformSettings, ServiceSpec
from nexus_platform._config import docs as settings_docs
from nexus_platform._config.settings import load_settings
from nexus_platform._probes.metadata import Metadata, Model
from nexus_platform._probes.readiness import HEALTH_JSON
from nexus_platform.testing import NexusService, assert_openai_error, free_port

ROOT = Path(__file__).resolve().parents[2]


# --- /health, /readyz -------------------------------------------------------------------------------


def test_health_passes_without_io(client: TestClient) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "pass"}
    assert response.headers["content-type"].startswith(HEALTH_JSON)


def test_readyz_passes_with_no_checks(make_client: Callable[..., TestClient]) -> None:
    response = make_client(ServiceSpec()).get("/readyz")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(HEALTH_JSON)
    assert response.headers["cache-control"] == "no-store"
    assert response.json()["status"] == "pass"


class _Backend(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(type(self).status)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def backend() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Backend)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_readyz_checks_a_live_backend(make_client: Callable[..., TestClient], backend: str) -> None:
    response = make_client(ServiceSpec(), BACKEND_URL=backend, BACKEND_HEALTH_PATH="/healthz").get("/readyz")
    assert response.status_code == 200
    [check] = response.json()["checks"]["backend:responseTime"]
    assert check["status"] == "pass"
    assert check["observedUnit"] == "ms"
    assert check["observedValue"] >= 0


def test_readyz_fails_when_the_backend_is_down(make_client: Callable[..., TestClient]) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    response = make_client(BACKEND_URL=closed).get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "fail"
    [check] = body["checks"]["backend:responseTime"]
    assert check["status"] == "fail"
    assert "cannot reach backend" in check["output"]
    assert closed not in response.text  # backend addresses are not published


def test_readyz_reports_raising_slow_and_warning_checks(make_client: Callable[..., TestClient]) -> None:
    async def raises(_: object) -> CheckResult:
        raise RuntimeError("secret detail")

    async def hangs(_: object) -> CheckResult:
        await asyncio.sleep(30)
        return CheckResult()

    async def warns(_: object) -> CheckResult:
        return CheckResult("warn", output="degraded")

    spec = ServiceSpec(readiness_checks={"a:raises": raises, "b:hangs": hangs, "c:warns": warns})
    client = make_client(spec, READINESS_TIMEOUT_SECONDS="0.3")
    response = client.get("/readyz")
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["a:raises"][0] == {
        **checks["a:raises"][0],
        "status": "fail",
        "output": "check raised RuntimeError",
    }
    assert checks["b:hangs"][0]["output"] == "timed out after 0.3s"
    assert checks["c:warns"][0]["status"] == "warn"
    assert "secret detail" not in response.text


def test_readyz_warn_keeps_the_service_ready(make_client: Callable[..., TestClient]) -> None:
    async def warns(_: object) -> CheckResult:
        return CheckResult("warn", output="degraded")

    response = make_client(ServiceSpec(readiness_checks={"c:warns": warns})).get("/readyz")
    assert response.status_code == 200
    assert response.json()["status"] == "warn"


def test_readyz_results_are_cached(make_client: Callable[..., TestClient]) -> None:
    calls = []

    async def counted(_: object) -> CheckResult:
        calls.append(1)
        return CheckResult()

    client = make_client(ServiceSpec(readiness_checks={"x:count": counted}), READINESS_CACHE_SECONDS="30")
    for _ in range(5):
        assert client.get("/readyz").status_code == 200
    assert len(calls) == 1


# --- /v1/metadata, /v1/models, OpenAPI --------------------------------------------------------------


def test_metadata_is_complete_and_typed(client: TestClient, nexus_service: NexusService) -> None:
    response = client.get("/v1/metadata")
    assert response.status_code == 200
    metadata = msgspec.json.decode(response.content, type=Metadata, strict=True)
    assert metadata.name == nexus_service.identity.name
    assert metadata.version == nexus_service.facts.service_version
    assert metadata.build.template_version == nexus_service.identity.template_version
    assert metadata.gpu is False
    assert metadata.links.health == "/health"
    assert len(metadata.instance_id) == 32
    assert metadata.started_at.endswith("Z")


def test_metadata_endpoints_are_the_app_routes(client: TestClient) -> None:
    metadata = client.get("/v1/metadata").json()
    openapi = client.get("/schema/openapi.json").json()
    documented = {
        (path, method.upper()) for path, operations in openapi["paths"].items() for method in operations
    }
    listed = {(endpoint["path"], endpoint["method"]) for endpoint in metadata["endpoints"]}
    assert listed == documented
    assert {("/health", "GET"), ("/readyz", "GET"), ("/v1/metadata", "GET"), ("/v1/models", "GET")} <= listed


@pytest.mark.parametrize("path", ["/schema", "/schema/openapi.json"])
def test_the_openapi_document_needs_nothing_from_the_internet(client: TestClient, path: str) -> None:
    """Only the JSON document is served: no HTML page that would load scripts from a CDN."""
    response = client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/")
    assert response.json()["openapi"].startswith("3.")
    for viewer in ("swagger", "redoc", "elements", "rapidoc", "scalar"):
        assert client.get(f"/schema/{viewer}").status_code == 404, viewer


def test_the_swagger_viewer_is_opt_in_at_a_pinned_version(make_client: Callable[..., TestClient]) -> None:
    client = make_client(OPENAPI_VIEWER="swagger")
    page = client.get("/schema/swagger")
    assert page.status_code == 200
    scripts = re.findall(r'(?:src|href)="(https://[^"]+)"', page.text)
    assert scripts
    assert all("@5." in url and "latest" not in url for url in scripts), scripts
    assert client.get("/schema").headers["content-type"] != "text/html"  # the document stays at /schema


def test_metadata_lists_a_new_route_without_other_changes(make_client: Callable[..., TestClient]) -> None:
    @get("/v1/extra", summary="An added route")
    async def extra() -> dict[str, str]:
        return {}

    metadata = make_client(ServiceSpec(route_handlers=[extra])).get("/v1/metadata").json()
    assert {"path": "/v1/extra", "method": "GET", "summary": "An added route"} in metadata["endpoints"]


def test_models_are_the_services_then_its_capability_modules(make_client: Callable[..., TestClient]) -> None:
    own = Model(id="own-model", created=1, owned_by="me")
    body = make_client(ServiceSpec(models=[own])).get("/v1/models").json()
    assert body["object"] == "list"
    listed = msgspec.convert(body["data"], list[Model])
    assert [model.id for model in listed] == [
        "own-model",
        "test-chat",
        "test-embed",
        "test-tts",
        "test-image",
    ]


def test_handlers_can_take_the_nexus_dependency(make_client: Callable[..., TestClient]) -> None:
    """`nexus: NamedDependency[NexusContext]` as a handler parameter (Litestar resolves its type hints)."""

    @get("/v1/test/context", tags=["test"])
    async def context(nexus: NamedDependency[NexusContext]) -> dict[str, str]:
        return {"service": nexus.settings.service_name}

    response = make_client(ServiceSpec(route_handlers=[context])).get("/v1/test/context")
    assert response.json() == {"service": "platform-tests"}


def test_fast_path_and_framework_answer_the_same(nexus_service: NexusService) -> None:
    nexus_app = nexus_service.create_app()
    with TestClient(nexus_app) as client:  # starts the app (lifespan) once
        framework = TestClient(nexus_app.app)  # the Litestar app behind the outer ASGI layer
        for path in ("/health", "/readyz", "/v1/models", "/v1/metadata"):
            fast, slow = client.get(path), framework.get(path)
            assert fast.status_code == slow.status_code
            assert fast.headers["content-type"] == slow.headers["content-type"]
            if path != "/readyz":  # readiness bodies carry the time of the check
                assert fast.content == slow.content


# --- errors -----------------------------------------------------------------------------------------


def test_unknown_path_is_an_openai_404(client: TestClient) -> None:
    error = assert_openai_error(client.get("/nope"), 404)
    assert error["type"] == "not_found_error"


def test_wrong_method_is_an_openai_405(client: TestClient) -> None:
    assert_openai_error(client.delete("/health"), 405)


class _Input(msgspec.Struct):
    input: str


@post("/v1/contract-input", status_code=200)
async def _contract_input(data: JSONBody[_Input]) -> dict[str, str]:
    return {"input": data.input}


@pytest.fixture
def json_client(make_client: Callable[..., TestClient]) -> TestClient:
    """A platform app with one JSON endpoint: the body rules hold whatever the service's routes are."""
    return make_client(ServiceSpec(route_handlers=[_contract_input]))


def test_malformed_json_is_an_openai_400(json_client: TestClient) -> None:
    response = json_client.post(
        "/v1/contract-input", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert assert_openai_error(response, 400)["type"] == "invalid_request_error"


def test_every_invalid_field_is_reported(make_client: Callable[..., TestClient]) -> None:
    class Body(msgspec.Struct, forbid_unknown_fields=True):
        name: str
        count: int
        ratio: float = 1.0

    @post("/v1/strict", status_code=200)
    async def strict(data: JSONBody[Body]) -> dict[str, str]:
        return {}

    client = make_client(ServiceSpec(route_handlers=[strict]))
    error = assert_openai_error(client.post("/v1/strict", json={"count": "x", "ratio": "y", "extra": 1}), 400)
    for field in ("`name`", "`count`", "`ratio`", "`extra`"):
        assert field in error["message"]
    assert error["param"] in {"name", "count", "ratio", "extra"}


def test_oversized_body_is_an_openai_413(make_client: Callable[..., TestClient]) -> None:
    client = make_client(ServiceSpec(route_handlers=[_contract_input]), MAX_BODY_BYTES="2048")
    response = client.post(
        "/v1/contract-input", content=b"x" * 4096, headers={"content-type": "application/json"}
    )
    assert_openai_error(response, 413)


def test_a_non_json_body_is_an_openai_415(json_client: TestClient) -> None:
    response = json_client.post(
        "/v1/contract-input", content=b'{"input": "x"}', headers={"content-type": "text/plain"}
    )
    assert assert_openai_error(response, 415)["code"] == "unsupported_media_type"


@pytest.mark.parametrize(
    "body", [b'{"input": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", b'{"input": "\xff"}', b"", b"[1]"]
)
def test_undecodable_bodies_are_openai_400s(json_client: TestClient, body: bytes) -> None:
    response = json_client.post(
        "/v1/contract-input", content=body, headers={"content-type": "application/json"}
    )
    assert_openai_error(response, 400)


def test_oversized_headers_are_an_openai_431(make_client: Callable[..., TestClient]) -> None:
    response = make_client(MAX_HEADER_BYTES="2048").get("/health", headers={"x-padding": "x" * 4096})
    assert assert_openai_error(response, 431)["code"] == "headers_too_large"


def test_a_crash_is_a_500_without_details(make_client: Callable[..., TestClient]) -> None:
    @get("/v1/boom")
    async def boom() -> None:
        raise RuntimeError("/secret/path/in/the/message")

    response = make_client(ServiceSpec(route_handlers=[boom])).get("/v1/boom")
    error = assert_openai_error(response, 500)
    assert error["type"] == "server_error"
    assert "secret" not in response.text


# --- request ids ------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/health", "/v1/metadata", "/nope", "/schema/openapi.json"])
def test_a_valid_request_id_is_kept(client: TestClient, path: str) -> None:
    assert (
        client.get(path, headers={"x-request-id": "abc-123.x:y_z"}).headers["x-request-id"] == "abc-123.x:y_z"
    )


def test_request_id_on_405(client: TestClient) -> None:
    assert client.post("/health", headers={"x-request-id": "r-405"}).headers["x-request-id"] == "r-405"


@pytest.mark.parametrize("bad", ["", "a" * 129, "has space", "semi;colon", 'quote"d'])
def test_an_invalid_request_id_is_replaced(client: TestClient, bad: str) -> None:
    request_id = client.get("/health", headers={"x-request-id": bad}).headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", request_id)


def test_a_request_id_is_generated(client: TestClient) -> None:
    first = client.get("/health").headers["x-request-id"]
    second = client.get("/health").headers["x-request-id"]
    assert first != second


# --- configuration ----------------------------------------------------------------------------------


def test_invalid_settings_name_every_variable() -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings(
            PlatformSettings, {"SERVICE_PORT": "abc", "LOG_LEVEL": "LOUD", "MAX_CONCURRENT_REQUESTS": "0"}
        )
    message = str(raised.value)
    for name in ("SERVICE_PORT", "LOG_LEVEL", "MAX_CONCURRENT_REQUESTS"):
        assert name in message


def test_a_value_with_a_line_break_is_refused_never_stripped() -> None:
    """A YAML block scalar or a secret file's last newline: `echo\\n` would pass the name's pattern (`$`
    matches before a final newline) and an API key with it would never match a caller's."""
    with pytest.raises(ConfigError) as raised:
        load_settings(
            PlatformSettings,
            {"SERVICE_NAME": "echo\n", "API_KEYS": "sk-" + "k" * 40 + "\r\n", "LOG_LEVEL": "LOUD"},
        )
    message = str(raised.value)
    assert "SERVICE_NAME: holds a line break (a value is one line)" in message
    assert "API_KEYS: holds a line break (a value is one line)" in message
    assert "LOG_LEVEL" in message  # the others are still named
    assert "kkkk" not in message


def test_secret_values_never_appear_in_errors() -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings(PlatformSettings, {"BACKEND_API_KEY": "x" * 10, "SERVICE_PORT": "0"})
    assert "xxxxxxxxxx" not in str(raised.value)


def test_every_platform_setting_has_a_description_and_a_group() -> None:
    """A field without them fails here, naming it: add `msgspec.Meta(description=..., extra={"group": ...})`
    to it in nexus_platform/_config/settings.py and regenerate the docs (`make settings-docs`)."""
    try:
        settings_docs.platform_settings()
    except settings_docs.UndocumentedSettings as error:
        pytest.fail(str(error))


class _Documented(msgspec.Struct, kw_only=True):
    cookie: Annotated[
        str, SECRET, msgspec.Meta(description="A | secret", extra={"group": "Access", "answer": "owner"})
    ] = "hunter2"
    limit: Annotated[int, msgspec.Meta(ge=1, description="How many to keep", extra={"group": "Limits"})] = 3
    release: Annotated[
        str,
        msgspec.Meta(description="Read at start-up", extra={"group": "Limits", "default_doc": "the release"}),
    ] = "1.2.3"


class _Undocumented(_Documented, kw_only=True):
    plain: int = 1
    grouped: Annotated[int, msgspec.Meta(description="Has a description", extra={"answer": "port"})] = 2


def test_generated_settings_docs_never_show_a_secret_and_say_where_defaults_come_from() -> None:
    settings = settings_docs.platform_settings(_Documented)
    env = settings_docs.env_block(settings)
    assert "hunter2" not in env
    assert "hunter2" not in settings_docs.markdown_table(settings)
    assert env.splitlines() == [
        "# --- Access ".ljust(103, "-"),
        "# A | secret",
        "COOKIE=",
        "",
        "# --- Limits ".ljust(103, "-"),
        "# How many to keep; accepted: at least 1",
        "LIMIT=3",
        "# Read at start-up",
        "RELEASE=",
    ]
    assert "| `RELEASE` | the release | Read at start-up |" in settings_docs.markdown_table(settings)
    assert "COOKIE={{ owner }}" in settings_docs.env_block(settings, "jinja")
    table = settings_docs.markdown_table(settings, "words", ["Access"])
    assert table.splitlines()[2:] == ["| `COOKIE` | the `owner` answer | A \\| secret |"]
    assert settings_docs.markdown_table(settings, groups=["Access"], variables=["LIMIT", "RELEASE"]) == (
        settings_docs.markdown_table(settings)
    )
    with pytest.raises(ValueError, match="Nowhere, TIMEOUT"):
        settings_docs.markdown_table(settings, groups=["Nowhere"], variables=["TIMEOUT"])


def test_a_setting_without_description_or_group_is_named_with_the_fix() -> None:
    with pytest.raises(settings_docs.UndocumentedSettings) as caught:
        settings_docs.platform_settings(_Undocumented)
    assert "_Undocumented fields without a description or group: plain, grouped." in str(caught.value)
    assert "msgspec.Meta(description=" in str(caught.value)
    assert "make settings-docs" in str(caught.value)


class _Jinja(msgspec.Struct):
    braces: Annotated[int, msgspec.Meta(description="Not {{ this }}", extra={"group": "Limits"})] = 1


def test_a_description_that_would_break_the_template_is_refused() -> None:
    with pytest.raises(settings_docs.UndocumentedSettings, match="braces: a description cannot hold"):
        settings_docs.platform_settings(_Jinja)


def _settings_command(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nexus_platform", "settings", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_settings_command_prints_the_documentation() -> None:
    result = _settings_command("--format", "markdown", "--groups", "Limits")
    assert result.returncode == 0, result.stderr
    assert "| `MAX_HEADER_BYTES` | `16384` |" in result.stdout
    assert "SERVICE_PORT" not in result.stdout
    env = _settings_command()
    assert env.returncode == 0
    assert env.stdout == settings_docs.env_block(settings_docs.platform_settings(features=()))


def test_settings_command_refuses_what_it_cannot_do() -> None:
    unknown = _settings_command("--format", "markdown", "--groups", "Nowhere")
    assert (unknown.returncode, unknown.stdout) == (2, "")
    assert "Nowhere" in unknown.stderr
    misplaced = _settings_command("--format", "env", "--groups", "Limits")
    assert (misplaced.returncode, misplaced.stdout) == (2, "")
    assert "markdown only" in misplaced.stderr


def test_settings_of_a_feature_the_service_was_rendered_without_are_refused(
    nexus_service: NexusService,
) -> None:
    with pytest.raises(ConfigError) as refused:
        nexus_service.create_app(
            environ={
                "ETCD_URL": "http://127.0.0.1:2379",
                "SERVICE_BASE_URL": "http://127.0.0.1:9000",
                "GPU_METRICS_INTERVAL_SECONDS": "2",
            }
        )
    message = str(refused.value)
    assert "ETCD_URL" in message
    assert "etcd_registration" in message
    assert "GPU_METRICS_INTERVAL_SECONDS" in message
