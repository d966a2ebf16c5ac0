"""The Nexus service contract, as tests a service inherits (`class TestContract(ContractTests)`).

Each test builds the service's own app (its ServiceSpec and Identity, from app/main.py) in process, or
runs `python -m app`, and checks what every Nexus service promises: the probes, the metadata against its
schema, OpenAI errors, request ids, limits, the OpenAI capabilities it offers (with the models, voices and
formats its capability modules declare), and its files (the lock, .env.example, no conflict markers).
Where a check needs an endpoint, the contract adds its own test-only route to the service's spec: no test
depends on the service's example code.
"""

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any

import msgspec
import pytest
from litestar import post
from litestar.params import JSONBody

from nexus_platform._config.docs import (
    ENV_END,
    ENV_START,
    README_END,
    README_START,
    SERVICE_README_END,
    SERVICE_README_START,
    env_block,
    generated_block,
    markdown_table,
    own_settings,
    service_env_lines,
    service_settings,
)
from nexus_platform._config.settings import PlatformSettings, load_settings, variable_names
from nexus_platform._locking import lock_problems
from nexus_platform._probes.metadata import Metadata, Model, json_schema
from nexus_platform._probes.readiness import HEALTH_JSON
from nexus_platform._rules import OPENAI_CAPABILITIES
from nexus_platform.openai import (
    AUDIO_MEDIA_TYPES,
    ChatCompletion,
    ChatCompletionChunk,
    EmbeddingList,
    ImagesResponse,
)
from nexus_platform.openai._capabilities import implementations
from nexus_platform.testing._checks import assert_openai_error, json_lines
from nexus_platform.testing._service import Client, LiveService, NexusService

__all__ = ["CONTRACT_PATH", "ContractTests", "offered_capabilities"]

# the contract's own test-only route (added to the service's spec where a check needs an endpoint)
CONTRACT_PATH = "/v1/nexus-contract/input"
_MISSING_MODEL = "no-such-model-nexus-contract"
_USER = [{"role": "user", "content": "Say hello"}]


class _Input(msgspec.Struct, forbid_unknown_fields=True):
    input: str
    count: int = 1


@post(CONTRACT_PATH, status_code=200, summary="The contract's test-only endpoint", tags=["test"])
async def _contract_input(data: JSONBody[_Input]) -> dict[str, str]:
    return {"input": data.input}


def _dotenv(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in text.splitlines() if re.match(r"^[A-Z][A-Z0-9_]*=", line))
    return dict(pairs)


def _has_lines(lines: list[str], comment: list[str], variable: str) -> bool:
    """Whether the line `variable=...` of .env.example has the lines `comment` right above it."""
    for number, line in enumerate(lines):
        if line.startswith(f"{variable}="):
            return lines[max(0, number - len(comment)) : number] == comment
    return False


def _offered(service: NexusService) -> dict[str, ModuleType]:
    identity = service.identity
    return implementations(
        service.spec.route_handlers, service.facts.service_capabilities, identity.backend, identity.package
    )


def _model(module: ModuleType) -> str:
    models: list[Model] = list(getattr(module, "MODELS", ()))
    return models[0].id if models else "any-model"


def _request(capability: str, model: str) -> dict[str, Any]:
    """A minimal valid OpenAI request of `capability`."""
    requests: dict[str, dict[str, Any]] = {
        "chat.completions": {"model": model, "messages": _USER},
        "embeddings": {"model": model, "input": ["one", "two"]},
        "audio.speech": {"model": model, "input": "Hello there", "voice": "alloy"},
        "images.generations": {"model": model, "prompt": "a lighthouse", "response_format": "b64_json"},
    }
    return requests[capability]


_PATHS = {name: capability.path for name, capability in OPENAI_CAPABILITIES.items()}


def offered_capabilities(service: NexusService) -> list[str]:
    """The OpenAI capabilities the service offers and the platform serves for it (the `capability`
    parameter of the contract's capability tests: one test per offered capability, none otherwise)."""
    return list(_offered(service))


class ContractTests:
    """The Nexus service contract. Subclass it in the service's tests (the `nexus_platform.testing` plugin
    gives the fixtures: `nexus_service`, `client`, `make_client`, `live_service`)."""

    @pytest.fixture
    def contract_client(self, nexus_service: NexusService, make_client: Callable[..., Client]) -> Client:
        """The service's app with the contract's test-only JSON endpoint added."""
        return make_client(nexus_service.with_routes(_contract_input))

    @pytest.fixture
    def offered(self, nexus_service: NexusService) -> dict[str, ModuleType]:
        return _offered(nexus_service)

    # --- probes -------------------------------------------------------------------------------------

    def test_health_passes_without_io(self, client: Client) -> None:
        response = client.get("/health")
        assert response.status_code == 200
        assert response.json() == {"status": "pass"}
        assert response.headers["content-type"].startswith(HEALTH_JSON)

    def test_readyz_is_a_health_report(self, client: Client) -> None:
        """200 unless a check fails (503); each check says how it went. A wrapper service tested without
        a backend (BACKEND_URL empty) is not ready: its backend check fails, and says so."""
        response = client.get("/readyz")
        body = response.json()
        assert response.headers["content-type"].startswith(HEALTH_JSON)
        assert response.headers["cache-control"] == "no-store"
        assert body["status"] in {"pass", "warn", "fail"}
        assert response.status_code == (503 if body["status"] == "fail" else 200)
        for name, results in body.get("checks", {}).items():
            assert ":" in name, f"a check is named component:measurement, not {name!r}"
            for result in results:
                assert result["status"] in {"pass", "warn", "fail"}
                if result["status"] == "fail":
                    assert result.get("output"), f"{name} fails without saying why"

    def test_metadata_matches_its_schema(self, client: Client, nexus_service: NexusService) -> None:
        response = client.get("/v1/metadata")
        assert response.status_code == 200
        body = response.json()
        schema = json.loads(json_schema())
        document = schema["$defs"][schema["$ref"].rsplit("/", 1)[1]]
        assert set(document["required"]) <= set(body) <= set(document["properties"])
        metadata = msgspec.json.decode(response.content, type=Metadata, strict=True)
        facts = nexus_service.facts
        assert metadata.name == nexus_service.identity.name
        assert metadata.version == facts.service_version
        assert metadata.description == facts.service_description
        assert metadata.owner == facts.service_owner
        assert metadata.capabilities == list(facts.service_capabilities)
        assert metadata.gpu is nexus_service.identity.gpu
        assert (metadata.gpu_info is not None) is nexus_service.identity.gpu
        assert len(metadata.instance_id) == 32
        assert metadata.started_at.endswith("Z")

    def test_metadata_endpoints_are_the_app_routes(self, client: Client) -> None:
        metadata = client.get("/v1/metadata").json()
        openapi = client.get("/schema/openapi.json").json()
        documented = {
            (path, method.upper()) for path, operations in openapi["paths"].items() for method in operations
        }
        listed = {(endpoint["path"], endpoint["method"]) for endpoint in metadata["endpoints"]}
        assert listed == documented
        assert {
            ("/health", "GET"),
            ("/readyz", "GET"),
            ("/v1/metadata", "GET"),
            ("/v1/models", "GET"),
        } <= listed

    def test_models_is_an_openai_list(self, client: Client, nexus_service: NexusService) -> None:
        response = client.get("/v1/models")
        if nexus_service.identity.backend == "openai" and response.status_code == 503:
            # a wrapper without a backend has no list yet
            assert_openai_error(response, 503)
            return
        body = response.json()
        assert body["object"] == "list"
        models = msgspec.convert(body["data"], list[Model])
        assert len({model.id for model in models}) == len(models), "a model is listed twice"
        listed = {model["id"] for model in client.get("/v1/metadata").json()["models"]}
        assert listed == {model.id for model in models}

    # --- errors -------------------------------------------------------------------------------------

    def test_unknown_path_is_an_openai_404(self, client: Client) -> None:
        assert assert_openai_error(client.get("/v1/nexus-contract/nope"), 404)["type"] == "not_found_error"

    def test_wrong_method_is_an_openai_405(self, client: Client) -> None:
        assert_openai_error(client.delete("/health"), 405)

    def test_malformed_json_is_an_openai_400(self, contract_client: Client) -> None:
        response = contract_client.post(
            CONTRACT_PATH, content=b"{not json", headers={"content-type": "application/json"}
        )
        assert assert_openai_error(response, 400)["type"] == "invalid_request_error"

    def test_every_invalid_field_is_reported(self, contract_client: Client) -> None:
        response = contract_client.post(CONTRACT_PATH, json={"count": "x", "extra": 1})
        error = assert_openai_error(response, 400)
        for field in ("`input`", "`count`", "`extra`"):
            assert field in error["message"]
        assert error["param"] in {"input", "count", "extra"}

    def test_a_body_over_max_body_bytes_is_an_openai_413(
        self, nexus_service: NexusService, make_client: Callable[..., Client]
    ) -> None:
        client = make_client(nexus_service.with_routes(_contract_input), MAX_BODY_BYTES="2048")
        small = client.post(CONTRACT_PATH, json={"input": "x" * 1000})
        assert small.status_code == 200, small.text
        response = client.post(
            CONTRACT_PATH, content=b"x" * 4096, headers={"content-type": "application/json"}
        )
        assert_openai_error(response, 413)

    def test_a_non_json_body_is_an_openai_415(self, contract_client: Client) -> None:
        response = contract_client.post(
            CONTRACT_PATH, content=b'{"input": "x"}', headers={"content-type": "text/plain"}
        )
        assert assert_openai_error(response, 415)["code"] == "unsupported_media_type"

    # --- request ids --------------------------------------------------------------------------------

    @pytest.mark.parametrize("path", ["/health", "/v1/metadata", "/v1/nexus-contract/nope", CONTRACT_PATH])
    def test_a_valid_request_id_is_echoed(self, contract_client: Client, path: str) -> None:
        response = contract_client.get(path, headers={"x-request-id": "abc-123.x:y_z"})
        assert response.headers["x-request-id"] == "abc-123.x:y_z"

    @pytest.mark.parametrize("bad", ["", "a" * 129, "has space", "semi;colon", 'quote"d'])
    def test_an_invalid_request_id_is_replaced(self, client: Client, bad: str) -> None:
        request_id = client.get("/health", headers={"x-request-id": bad}).headers["x-request-id"]
        assert re.fullmatch(r"[0-9a-f]{32}", request_id)

    def test_a_request_id_is_generated(self, contract_client: Client) -> None:
        first = contract_client.post(CONTRACT_PATH, json={"input": "x"}).headers["x-request-id"]
        second = contract_client.get("/health").headers["x-request-id"]
        assert first != second
        assert all(re.fullmatch(r"[0-9a-f]{32}", each) for each in (first, second))

    # --- the OpenAI capabilities it offers ----------------------------------------------------------

    def test_every_offered_capability_has_its_implementation(self, nexus_service: NexusService) -> None:
        """A capability of release/service.env without a complete app/capabilities/ module stops start-up."""
        _offered(nexus_service)  # raises ConfigError naming the module and what it lacks

    def test_an_offered_capability_answers_with_the_openai_types(
        self,
        client: Client,
        nexus_service: NexusService,
        offered: dict[str, ModuleType],
        capability: str,
    ) -> None:
        module = offered[capability]
        response = client.post(_PATHS[capability], json=_request(capability, _model(module)))
        if nexus_service.identity.backend == "openai":  # tested without a backend: an honest 503
            assert assert_openai_error(response, 503)["code"] == "backend_not_configured"
            return
        if capability == "audio.speech":  # in the first format it declares (every one: the test below)
            declared = tuple(getattr(module, "FORMATS", ())) or ("mp3",)
            response = client.post(
                _PATHS[capability],
                json={
                    **_request(capability, _model(module)),
                    "response_format": declared[0],
                    "voice": next(iter(getattr(module, "VOICES", ())), "alloy"),
                },
            )
            assert response.status_code == 200, response.text
            assert response.headers["content-type"].startswith(AUDIO_MEDIA_TYPES[declared[0]])
            assert response.content
            return
        assert response.status_code == 200, response.text
        answer_type = {
            "chat.completions": ChatCompletion,
            "embeddings": EmbeddingList,
            "images.generations": ImagesResponse,
        }[capability]
        answer = msgspec.json.decode(response.content, type=answer_type, strict=True)
        if isinstance(answer, ChatCompletion):
            assert answer.choices
            assert answer.choices[0].message.role == "assistant"
        elif isinstance(answer, EmbeddingList):
            assert [item.index for item in answer.data] == [0, 1]
            assert all(item.embedding for item in answer.data)
        else:
            assert answer.data
            assert answer.data[0].b64_json

    def test_a_model_it_does_not_list_is_an_openai_404(
        self, client: Client, offered: dict[str, ModuleType], capability: str
    ) -> None:
        if not getattr(offered[capability], "MODELS", ()):
            pytest.skip(f"{capability} accepts any model (its MODELS is empty)")
        response = client.post(_PATHS[capability], json=_request(capability, _MISSING_MODEL))
        error = assert_openai_error(response, 404)
        assert (error["code"], error["param"]) == ("model_not_found", "model")

    def test_a_chat_stream_is_openai_events_ending_with_done(
        self, client: Client, nexus_service: NexusService, offered: dict[str, ModuleType]
    ) -> None:
        if "chat.completions" not in offered or nexus_service.identity.backend == "openai":
            pytest.skip("no chat.completions of its own to stream")
        body = {**_request("chat.completions", _model(offered["chat.completions"])), "stream": True}
        response = client.post(_PATHS["chat.completions"], json=body)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [
            line.removeprefix("data: ") for line in response.text.splitlines() if line.startswith("data: ")
        ]
        assert events[-1] == "[DONE]"
        chunks = [msgspec.json.decode(event, type=ChatCompletionChunk, strict=True) for event in events[:-1]]
        assert "".join(choice.delta.content or "" for chunk in chunks for choice in chunk.choices)

    def test_speech_in_the_formats_and_voices_it_declares(
        self, client: Client, nexus_service: NexusService, offered: dict[str, ModuleType]
    ) -> None:
        """Every format of the module's FORMATS (default: any of OpenAI's, at least one working) in its
        first voice (VOICES; default `alloy`) is audio of that format's type; a format it does not speak
        is an OpenAI error, before any audio."""
        if "audio.speech" not in offered or nexus_service.identity.backend == "openai":
            pytest.skip("no audio.speech of its own")
        module = offered["audio.speech"]
        declared = tuple(getattr(module, "FORMATS", ()))
        unknown = set(declared) - set(AUDIO_MEDIA_TYPES)
        assert not unknown, f"FORMATS names formats OpenAI does not have: {sorted(unknown)}"
        voice = next(iter(getattr(module, "VOICES", ())), "alloy")
        spoken = []
        for audio_format, media_type in AUDIO_MEDIA_TYPES.items():
            body = {
                **_request("audio.speech", _model(module)),
                "voice": voice,
                "response_format": audio_format,
            }
            response = client.post(_PATHS["audio.speech"], json=body)
            if response.status_code == 200:
                assert response.headers["content-type"] == media_type
                assert response.content, f"{audio_format}: no audio"
                spoken.append(audio_format)
            else:
                assert 400 <= response.status_code < 500, response.text
                assert_openai_error(response, response.status_code)
        if declared:
            assert sorted(spoken) == sorted(declared), "the formats it speaks are not its FORMATS"
        assert spoken, "no format of OpenAI's is spoken"

    # --- the service's files ------------------------------------------------------------------------

    def test_the_lock_is_current(self, nexus_service: NexusService) -> None:
        problems = lock_problems(nexus_service.root)
        assert not problems, "\n".join(problems)

    def test_env_example_documents_every_setting_with_its_default(self, nexus_service: NexusService) -> None:
        """Every variable of the platform and of ServiceSpec.settings, and no other, with its default; a
        service setting with a description has it as its comment, as `settings --app` writes it."""
        text = (nexus_service.root / ".env.example").read_text()
        documented = _dotenv(text)
        settings_type = nexus_service.spec.settings
        own = variable_names(settings_type) if settings_type else []
        platform = [setting.variable for setting in service_settings(nexus_service.identity)]
        declared = settings_type.__name__ if settings_type else "ServiceSpec.settings"
        problems = [
            f"{variable} is declared in {declared} but missing from .env.example (`python -m nexus_platform "
            "settings --app` prints its lines)"
            for variable in own
            if variable not in documented
        ]
        problems += [
            f"{variable} is a platform setting but missing from .env.example (take the template update of the "
            "release you pin)"
            for variable in platform
            if variable not in documented
        ]
        problems += [
            f"{variable} is in .env.example but declared neither in {declared} nor by the platform"
            for variable in documented
            if variable not in {*own, *platform}
        ]
        lines = text.splitlines()
        problems += [
            f"{setting.variable}'s comment in .env.example is not its description in {declared} (write the "
            f"lines `python -m nexus_platform settings --app` prints for it)"
            for setting in own_settings(settings_type)
            if setting.description
            and setting.variable in documented
            and not _has_lines(lines, service_env_lines(setting)[:-1], setting.variable)
        ]
        assert not problems, "\n".join(problems)
        defaults = nexus_service.identity.setting_defaults()
        assert load_settings(PlatformSettings, documented, defaults) == load_settings(
            PlatformSettings, {}, defaults
        ), "a platform default in .env.example differs"
        if settings_type:
            assert load_settings(settings_type, documented) == settings_type(), (
                "a default of the service's settings in .env.example differs"
            )

    def test_env_example_platform_part_is_what_the_platform_produces(
        self, nexus_service: NexusService
    ) -> None:
        published = generated_block((nexus_service.root / ".env.example").read_text(), ENV_START, ENV_END)
        assert published is not None, f".env.example: the platform settings block ({ENV_START!r}) is missing"
        assert published == env_block(service_settings(nexus_service.identity)), (
            ".env.example: the platform part differs from this platform release's settings (a pin bumped "
            "without the template update of its release?): take that update (copier update)"
        )

    def test_readme_settings_table_is_what_the_platform_produces(self, nexus_service: NexusService) -> None:
        """The platform's table, as this release writes it; each service setting with a description has
        its row, as `settings --app --format markdown` writes it, in the service settings table."""
        text = (nexus_service.root / "README.md").read_text()
        published = generated_block(text, README_START, README_END)
        assert published is not None, f"README.md: the platform settings table ({README_START!r}) is missing"
        assert published == markdown_table(service_settings(nexus_service.identity)), (
            "README.md: the settings table differs from this platform release's settings: take the template "
            "update of the release you pin (copier update)"
        )
        described = [setting for setting in own_settings(nexus_service.spec.settings) if setting.description]
        if not described:
            return
        table = generated_block(text, SERVICE_README_START, SERVICE_README_END)
        assert table is not None, (
            f"README.md: the service settings table ({SERVICE_README_START!r} to {SERVICE_README_END!r}) is "
            "missing: put the second table `python -m nexus_platform settings --app --format markdown` prints there"
        )
        rows = set(table.splitlines())
        stale = [
            setting.variable
            for setting in described
            if markdown_table([setting]).splitlines()[-1] not in rows
        ]
        assert not stale, "\n".join(
            f"{variable} is declared in {nexus_service.spec.settings.__name__ if nexus_service.spec.settings else ''} "
            "with a description its row in README.md's service settings table lacks (`python -m nexus_platform "
            "settings --app --format markdown` prints the table)"
            for variable in stale
        )

    def test_no_conflict_markers_are_left_in_the_service(self, nexus_service: NexusService) -> None:
        """A `copier update` conflict left unresolved must never pass the tests, committed or not."""
        root = nexus_service.root
        listed = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
            cwd=root,
            capture_output=True,
            text=True,
            check=False,
        )
        paths = listed.stdout.splitlines() if listed.returncode == 0 else []
        everything = [path for path in root.rglob("*") if not {".venv", ".git"} & set(path.parts)]
        files = [root / path for path in paths] or everything
        marker = re.compile(r"^(<{7}|>{7}) ", re.MULTILINE)
        conflicted = [
            str(path.relative_to(root))
            for path in files
            if path.is_file()
            and path.stat().st_size < 2_000_000
            and marker.search(path.read_text(errors="replace"))
        ]
        assert not conflicted, f"unresolved conflict markers in {conflicted}"
        # rejected hunks, even where a .gitignore hides them
        rejects = sorted(str(path.relative_to(root)) for path in everything if path.suffix == ".rej")
        assert not rejects, f"unapplied update hunks in {rejects}"

    # --- the process --------------------------------------------------------------------------------

    def test_an_invalid_setting_stops_the_process_with_one_line(self, nexus_service: NexusService) -> None:
        path = os.pathsep.join(filter(None, [str(nexus_service.import_root), os.environ.get("PYTHONPATH")]))
        result = subprocess.run(
            [sys.executable, "-m", nexus_service.identity.package],
            cwd=nexus_service.root,
            env={**os.environ, "PYTHONPATH": path, "SERVICE_PORT": "abc"},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 2
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert "SERVICE_PORT" in lines[0]

    def test_the_live_service_logs_json_with_request_ids_and_drains_on_sigterm(
        self, live_service: Callable[..., LiveService]
    ) -> None:
        import httpx

        live = live_service(LOG_LEVEL="INFO")
        with httpx.Client(base_url=live.url, timeout=30) as http:  # slack for a busy CI runner
            assert http.get("/health", headers={"x-request-id": "live-1"}).status_code == 200
            assert http.get("/v1/nexus-contract/nope", headers={"x-request-id": "live-2"}).status_code == 404
        live.signal(signal.SIGTERM)
        assert live.process.wait(timeout=30) == 0
        access = [line for line in json_lines(live.log()) if line.get("logger") == "nexus.access"]
        assert {(line["path"], line["status"], line["request_id"]) for line in access} >= {
            ("/health", 200, "live-1"),
            ("/v1/nexus-contract/nope", 404, "live-2"),
        }
        assert all({"method", "duration_ms", "time", "level"} <= set(line) for line in access)
