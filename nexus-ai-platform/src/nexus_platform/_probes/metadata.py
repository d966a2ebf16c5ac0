"""GET /v1/metadata: what the gateway discovers about this service.

The document is built once at start-up; `endpoints` comes from the app's own routes.
`python -m nexus_platform metadata-schema` prints its JSON Schema (published as docs/metadata.schema.json).
"""

from typing import Literal

import msgspec
from litestar import Litestar

SCHEMA_VERSION = "1.0"
API_VERSION = "v1"


class Endpoint(msgspec.Struct, frozen=True):
    path: str
    method: str
    summary: str


class Model(msgspec.Struct, frozen=True):
    """An OpenAI model object, as listed by GET /v1/models."""

    id: str
    created: int
    owned_by: str
    object: Literal["model"] = "model"


class ModelList(msgspec.Struct, frozen=True):
    data: list[Model]
    object: Literal["list"] = "list"


class GpuDevice(msgspec.Struct, frozen=True):
    index: int
    name: str
    uuid: str
    memory_total_bytes: int


class GpuInfo(msgspec.Struct, frozen=True):
    count: int
    devices: list[GpuDevice]
    driver_version: str | None
    cuda_version: str | None
    # why no devices could be listed (no driver, NVML error); null when they were
    error: str | None = None


RegistrationState = Literal["disabled", "registering", "registered", "withdrawn", "retrying", "revoked"]


class RegistrationInfo(msgspec.Struct, frozen=True):
    """Self-registration in etcd; `withdrawn`: not registered while readiness fails."""

    state: RegistrationState
    # this instance's key (ETCD_KEY_PREFIX + SERVICE_NAME + "/" + instance_id)
    key: str
    lease_ttl_seconds: int | None
    # why the last attempt failed (an error class or an HTTP status, never an address)
    last_error: str | None = None


class BuildInfo(msgspec.Struct, frozen=True):
    git_sha: str | None
    build_time: str | None
    template_version: str


class Links(msgspec.Struct, frozen=True):
    health: str = "/health"
    readiness: str = "/readyz"
    models: str = "/v1/models"
    openapi: str = "/schema/openapi.json"


class Metadata(msgspec.Struct, frozen=True):
    """Service discovery document of a Nexus service."""

    schema_version: str
    name: str
    version: str
    description: str
    api_version: str
    owner: str
    capabilities: list[str]
    endpoints: list[Endpoint]
    models: list[Model]
    gpu: bool
    gpu_info: GpuInfo | None
    # null when the service was rendered without etcd registration
    registration: RegistrationInfo | None
    instance_id: str
    started_at: str
    build: BuildInfo
    links: Links


def route_endpoints(app: Litestar) -> list[Endpoint]:
    """Every operation of the app's OpenAPI document: the routes themselves, never a hand-kept list."""
    endpoints = [
        Endpoint(path=path, method=method.upper(), summary=operation.summary or "")
        for path, item in (app.openapi_schema.paths or {}).items()
        for method in ("get", "put", "post", "delete", "patch")
        if (operation := getattr(item, method)) is not None
    ]
    return sorted(endpoints, key=lambda endpoint: (endpoint.path, endpoint.method))


def json_schema() -> str:
    """The JSON Schema of the metadata document, as published in the template's docs."""
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", **msgspec.json.schema(Metadata)}
    return msgspec.json.format(msgspec.json.encode(schema), indent=2).decode() + "\n"
