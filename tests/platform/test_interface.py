"""The platform's interface to services: the public names of nexus_platform (and its openai and testing
packages), ServiceSpec's Litestar hooks, the model list (static or from a provider) and the service's facts
in release/service.env."""

import asyncio
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import msgspec
import nexus_platform
import nexus_platform.gateway
import nexus_platform.openai
import nexus_platform.testing
import pytest
from litestar import Litestar, get
from litestar.config.app import AppConfig
from litestar.di import NamedDependency
from litestar.plugins import InitPluginProtocol
from litestar.testing import TestClient
from nexus_platform import ConfigError, Model, NexusContext, ServiceError, ServiceSpec, create_app
from nexus_platform._config.facts import FactsError, parse_facts, read_facts
from nexus_platform.testing import NexusService

# Removing a name is a breaking change for every service: the changelog announces it.
PUBLIC_NAMES = [
    "SECRET",
    "Authorize",
    "Caller",
    "CheckResult",
    "ConfigError",
    "Identity",
    "Model",
    "ModelProvider",
    "NexusASGI",
    "NexusContext",
    "PlatformSettings",
    "ReadinessCheck",
    "ServiceError",
    "ServiceLifespan",
    "ServiceSpec",
    "__version__",
    "byte_stream",
    "cancelled",
    "create_app",
    "create_app_or_exit",
    "current_request_id",
    "event_stream",
    "http_dependency",
    "nexus_of",
    "run_blocking",
    "serve",
]
# the OpenAI types the service's capability modules (app/capabilities/) import
OPENAI_NAMES = [
    "AUDIO_MEDIA_TYPES",
    "AssistantMessage",
    "AudioFormat",
    "ChatCompletion",
    "ChatCompletionChunk",
    "ChatCompletionRequest",
    "ChatMessage",
    "Choice",
    "ChunkChoice",
    "Delta",
    "Embedding",
    "EmbeddingList",
    "EmbeddingRequest",
    "EmbeddingUsage",
    "Image",
    "ImageGenerationRequest",
    "ImagesResponse",
    "SpeechRequest",
    "Usage",
]
# the contract a service runs with one template-owned test file, and the fixtures its own tests use
TESTING_NAMES = [
    "CONTRACT_PATH",
    "Client",
    "ContractTests",
    "LiveService",
    "NexusService",
    "assert_openai_error",
    "client",
    "free_port",
    "json_lines",
    "live_service",
    "load_service",
    "make_client",
    "nexus_service",
    "pytest_addoption",
    "pytest_generate_tests",
]

# the gateway a `role: gateway` render serves (docs/gateway.md)
GATEWAY_NAMES = ["CHECK_NAME", "OPENAI_PATHS", "Gateway", "GatewaySettings", "gateway_of", "gateway_spec"]


def test_every_other_module_of_the_platform_is_private() -> None:
    """Only the packages and `python -m nexus_platform` are public; a module a service could import by
    accident is a `_` module, which says it may change in any release."""
    package = Path(nexus_platform.__file__).parent
    public = {
        path.relative_to(package).as_posix()
        for path in package.rglob("*.py")
        if not any(part.startswith("_") and not part.startswith("__") for part in path.parts)
    }
    assert public == {
        "__init__.py",
        "__main__.py",
        "gateway/__init__.py",
        "openai/__init__.py",
        "testing/__init__.py",
    }


@pytest.mark.parametrize(
    ("module", "names"),
    [
        (nexus_platform, PUBLIC_NAMES),
        (nexus_platform.openai, OPENAI_NAMES),
        (nexus_platform.testing, TESTING_NAMES),
        (nexus_platform.gateway, GATEWAY_NAMES),
    ],
    ids=["nexus_platform", "openai", "testing", "gateway"],
)
def test_the_public_names_are_pinned(module: ModuleType, names: list[str]) -> None:
    assert sorted(module.__all__) == sorted(names)
    for name in names:
        assert getattr(module, name) is not None, name


# --- Litestar's hooks -------------------------------------------------------------------------------


@get("/v1/plugged", summary="Added by a plugin")
async def plugged(nexus: NamedDependency[NexusContext]) -> dict[str, bool]:
    return {"running": nexus.running}


class RoutePlugin(InitPluginProtocol):
    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        app_config.route_handlers.append(plugged)
        return app_config


def test_plugins_and_on_app_init_reach_litestar(make_client: Callable[..., TestClient]) -> None:
    started: list[Litestar] = []

    def listen(app_config: AppConfig) -> AppConfig:
        app_config.on_startup.append(started.append)
        app_config.state["from_hook"] = True
        return app_config

    client = make_client(ServiceSpec(plugins=[RoutePlugin()], on_app_init=[listen]))
    assert client.get("/v1/plugged").json() == {"running": True}
    assert len(started) == 1
    assert started[0].state["from_hook"] is True
    listed = {endpoint["path"] for endpoint in client.get("/v1/metadata").json()["endpoints"]}
    assert {"/v1/plugged", "/health", "/v1/models"} <= listed


def test_a_hook_cannot_remove_the_platform_routes(nexus_service: NexusService) -> None:
    def drop_everything(app_config: AppConfig) -> AppConfig:
        app_config.route_handlers.clear()
        return app_config

    with pytest.raises(ConfigError, match="removed the platform routes"):
        nexus_service.create_app(ServiceSpec(on_app_init=[drop_everything]))


def test_a_service_route_on_a_platform_path_is_a_clear_configuration_error(
    nexus_service: NexusService,
) -> None:
    @get("/v1/models")
    async def own_models() -> dict[str, str]:
        return {}

    with pytest.raises(ConfigError, match="async provider"):
        nexus_service.create_app(ServiceSpec(route_handlers=[own_models]))


# --- the model list ---------------------------------------------------------------------------------


def _ids(client: TestClient, path: str = "/v1/models") -> list[str]:
    """The ids listed, in order (the example's capability modules add theirs: tests use a service without)."""
    document = client.get(path).json()
    models = document["data"] if path == "/v1/models" else document["models"]
    return [model["id"] for model in models]


@pytest.fixture
def plain(make_identity: Callable[..., object]) -> object:
    """An identity offering no capability: the model list is the service's own."""
    return make_identity()


def test_a_static_model_list_is_served_as_given(make_client: Callable[..., TestClient], plain) -> None:
    client = make_client(ServiceSpec(models=[Model(id="tiny", created=1, owned_by="me")]), plain)
    assert _ids(client) == ["tiny"]
    assert _ids(client, "/v1/metadata") == ["tiny"]


def test_a_model_provider_is_cached_shared_and_followed_by_the_metadata(
    nexus_service: NexusService, plain
) -> None:
    calls: list[int] = []
    backend = ["llama3"]

    async def provider(nexus: NexusContext) -> list[Model]:
        calls.append(1)
        await asyncio.sleep(0.05)
        return [Model(id=name, created=0, owned_by="ollama") for name in backend]

    spec = ServiceSpec(models=provider, models_cache_seconds=0.2)
    nexus_app = create_app(spec, plain, environ=nexus_service.environ())
    with TestClient(nexus_app) as client:
        framework = TestClient(nexus_app.app)  # the Litestar handler behind the fast path
        for _ in range(5):
            assert _ids(client) == ["llama3"]
        assert framework.get("/v1/models").content == client.get("/v1/models").content
        assert len(calls) == 1  # the start-up fetch and five requests: one call within the cache period
        backend.append("mistral")
        asyncio.run(asyncio.sleep(0.3))
        assert _ids(client) == ["llama3", "mistral"]
        assert _ids(client, "/v1/metadata") == ["llama3", "mistral"]


def test_a_failing_provider_keeps_the_last_good_list_or_answers_503(
    make_client: Callable[..., TestClient], plain
) -> None:
    state = {"fail": True}

    async def provider(nexus: NexusContext) -> list[Model]:
        if state["fail"]:
            raise ConnectionError("backend down")
        return [Model(id="tiny", created=0, owned_by="me")]

    client = make_client(ServiceSpec(models=provider, models_cache_seconds=0.1), plain)
    response = client.get("/v1/models")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "models_unavailable"
    assert "backend down" not in response.text
    state["fail"] = False
    asyncio.run(asyncio.sleep(1.1))  # a failure is retried after a second
    assert _ids(client) == ["tiny"]
    state["fail"] = True
    asyncio.run(asyncio.sleep(0.2))
    assert _ids(client) == ["tiny"]  # stale but good


def test_a_provider_says_why_there_is_no_list_with_a_service_error(
    make_client: Callable[..., TestClient], plain
) -> None:
    async def provider(nexus: NexusContext) -> list[Model]:
        raise ServiceError(502, "backend_error", "The backend's model list is not OpenAI's")

    response = make_client(ServiceSpec(models=provider), plain).get("/v1/models")
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "backend_error"
    assert response.json()["error"]["message"] == "The backend's model list is not OpenAI's"


# --- the service's facts (release/service.env) ------------------------------------------------------


def test_metadata_and_openapi_say_what_release_service_env_says(
    client: TestClient, nexus_service: NexusService
) -> None:
    facts = read_facts(nexus_service.identity.facts_file)
    metadata = client.get("/v1/metadata").json()
    assert metadata["version"] == facts.service_version
    assert metadata["description"] == facts.service_description
    assert metadata["owner"] == facts.service_owner
    assert metadata["capabilities"] == list(facts.service_capabilities)
    info = client.get("/schema/openapi.json").json()["info"]
    assert (info["version"], info["description"]) == (facts.service_version, facts.service_description)


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("SERVICE_VERSION=1.2\nSERVICE_DESCRIPTION=x\nSERVICE_OWNER=team", "SERVICE_VERSION"),
        ("SERVICE_VERSION=1.2.0\nSERVICE_DESCRIPTION=x\nSERVICE_OWNER=Team A", "SERVICE_OWNER"),
        ("SERVICE_VERSION=1.2.0\nSERVICE_OWNER=team", "SERVICE_DESCRIPTION"),
        ("SERVICE_VERSON=1.2.0\nSERVICE_DESCRIPTION=x\nSERVICE_OWNER=team", "SERVICE_VERSON"),
        (
            "SERVICE_VERSION=1.2.0\nSERVICE_DESCRIPTION=x\nSERVICE_OWNER=team\nSERVICE_CAPABILITIES=Chat",
            "CAPABILITIES",
        ),
        ('SERVICE_VERSION="1.2.0', "SERVICE_VERSION"),
        ("version: 1.2.0", ":1:"),
    ],
)
def test_a_bad_facts_file_is_refused_naming_the_line(text: str, named: str) -> None:
    with pytest.raises(FactsError, match=named):
        parse_facts(text)


def test_facts_parse() -> None:
    facts = parse_facts(
        "# comment\n\nSERVICE_VERSION=1.2.0-rc.1\nSERVICE_DESCRIPTION=Speech, for everyone.\n"
        "SERVICE_OWNER=voice-team\nSERVICE_CAPABILITIES=audio.speech, audio.voices\n"
    )
    assert msgspec.structs.asdict(facts) == {
        "service_version": "1.2.0-rc.1",
        "service_description": "Speech, for everyone.",
        "service_owner": "voice-team",
        "service_capabilities": ("audio.speech", "audio.voices"),
    }
