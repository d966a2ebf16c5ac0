# Managed by nexus-template: `copier update` replaces this file. Your code belongs in app/service.py.
"""Settings from the environment, parsed once at start-up into msgspec structs.

A field `backend_url` is read from the variable BACKEND_URL. An empty variable counts as unset.
Every invalid variable is reported, each on one line that names it; `.env.example` documents them all
(the contract tests keep the two lists equal). Fields whose type carries `SECRET` are never logged or shown.
"""

import os
from collections.abc import Mapping
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import urlsplit

import msgspec

from app.nexus import identity
from app.nexus.redaction import MASK, redact_url
from app.nexus.validation import field_errors

SECRET = msgspec.Meta(extra={"secret": True})

Port = Annotated[int, msgspec.Meta(ge=1, le=65535)]
Seconds = Annotated[float, msgspec.Meta(gt=0, le=3600)]
NonNegativeSeconds = Annotated[float, msgspec.Meta(ge=0, le=3600)]
HttpUrlOrEmpty = Annotated[str, msgspec.Meta(pattern=r"^(https?://[^\s/?#]+[^\s]*)?$")]
UrlPath = Annotated[str, msgspec.Meta(pattern=r"^/[^\s]*$")]
LogLevel = Annotated[str, msgspec.Meta(pattern=r"^(?i:debug|info|warning|error|critical)$")]
EtcdUrls = Annotated[str, msgspec.Meta(pattern=r"^(https?://[^\s,/]+(,\s*https?://[^\s,/]+)*)?$")]
ServiceName = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$", max_length=40)]

SettingsT = TypeVar("SettingsT", bound=msgspec.Struct)


class ConfigError(Exception):
    """The environment holds invalid settings; the message has one line per bad variable."""


class PlatformSettings(msgspec.Struct, frozen=True, kw_only=True):
    service_name: ServiceName = identity.SERVICE_NAME
    service_version: Annotated[str, msgspec.Meta(min_length=1, max_length=64)] = identity.SERVICE_VERSION
    service_host: Annotated[str, msgspec.Meta(min_length=1)] = "0.0.0.0"
    service_port: Port = identity.DEFAULT_PORT
    log_level: LogLevel = "INFO"
    # the HTTP backend this service wraps (e.g. an Ollama server); empty = no backend readiness check
    backend_url: HttpUrlOrEmpty = ""
    backend_health_path: UrlPath = "/"
    backend_api_key: Annotated[str, SECRET] = ""
    backend_timeout_seconds: Seconds = 30.0
    readiness_timeout_seconds: Seconds = 2.0
    readiness_cache_seconds: Annotated[float, msgspec.Meta(ge=0, lt=60)] = 1.0
    request_timeout_seconds: Seconds = 60.0
    # streaming responses: most seconds between two chunks, and for the whole stream (app.nexus.streaming)
    stream_idle_timeout_seconds: Seconds = 30.0
    stream_max_seconds: Seconds = 3600.0
    max_concurrent_requests: Annotated[int, msgspec.Meta(ge=1, le=100_000)] = 64
    max_body_bytes: Annotated[int, msgspec.Meta(ge=1024, le=1 << 30)] = 1 << 20
    max_header_bytes: Annotated[int, msgspec.Meta(ge=1024, le=1 << 20)] = 16384
    # slow and silent clients (app/nexus/protocol.py, app/nexus/bodyguard.py): cut off long before
    # REQUEST_TIMEOUT_SECONDS, so that they cannot hold connections or concurrency slots
    idle_timeout_seconds: Seconds = 5.0
    header_timeout_seconds: Seconds = 10.0
    body_timeout_seconds: Seconds = 10.0
    min_body_bytes_per_second: Annotated[int, msgspec.Meta(ge=1, le=1 << 30)] = 1024
    # "" serves the OpenAPI document only; "swagger" adds a viewer page whose scripts come from a CDN
    openapi_viewer: Literal["", "swagger"] = ""
    drain_seconds: NonNegativeSeconds = 5.0
    shutdown_grace_seconds: Seconds = 20.0
    git_sha: Annotated[str, msgspec.Meta(max_length=64)] = ""
    build_time: Annotated[str, msgspec.Meta(max_length=64)] = ""
    # observability (docs/operations.md): GET /metrics and its per-request counting
    metrics_enabled: bool = True
    # W3C trace context: trace ids in log lines, traceparent forwarded by the pooled HTTP client
    tracing_enabled: bool = True
    # log lines held while stdout is not read; beyond this they are dropped and counted
    log_buffer_bytes: Annotated[int, msgspec.Meta(ge=65536, le=1 << 30)] = 4 << 20


def env_name(field_name: str) -> str:
    return field_name.upper()


def variable_names(settings_type: type[msgspec.Struct]) -> list[str]:
    return [env_name(field.name) for field in msgspec.structs.fields(settings_type)]


def secret_fields(settings_type: type[msgspec.Struct]) -> set[str]:
    """Names of the fields annotated with SECRET."""
    return {
        field.name
        for field in msgspec.structs.fields(settings_type)
        if SECRET in getattr(field.type, "__metadata__", ())
    }


def load_settings(settings_type: type[SettingsT], environ: Mapping[str, str] | None = None) -> SettingsT:
    """Read `settings_type` from the environment; raise ConfigError naming every bad variable."""
    environ = os.environ if environ is None else environ
    raw: dict[str, Any] = {}
    for field in msgspec.structs.fields(settings_type):
        value = environ.get(env_name(field.name), "")
        if value != "":
            raw[field.name] = value
    try:
        return msgspec.convert(raw, settings_type, strict=False)
    except msgspec.ValidationError as error:
        problems = [
            f"{env_name(problem.field)}: {problem.message} (got {redact_url(repr(raw[problem.field]))})"
            if problem.field in raw and problem.field not in secret_fields(settings_type)
            else f"{env_name(problem.field)}: {problem.message}"
            for problem in field_errors(settings_type, raw, strict=False)
        ]
        raise ConfigError("; ".join(problems or [str(error)])) from None


def redacted(settings: msgspec.Struct) -> dict[str, Any]:
    """The settings as a dict with secret values replaced and URL credentials removed, safe to log."""
    hidden = secret_fields(type(settings))
    return {
        env_name(name): (
            MASK if name in hidden and value else redact_url(value) if isinstance(value, str) else value
        )
        for name, value in msgspec.structs.asdict(settings).items()
    }


def secret_values(*settings: msgspec.Struct | None) -> list[str]:
    """The values of the secret settings and the passwords in URL settings, for the log redactor."""
    values = []
    for each in settings:
        if each is None:
            continue
        hidden = secret_fields(type(each))
        for name, value in msgspec.structs.asdict(each).items():
            if not isinstance(value, str) or not value:
                continue
            if name in hidden:
                values.append(value)
            elif "://" in value:
                values += [password for url in value.split(",") if (password := _password(url))]
    return values


def _password(url: str) -> str | None:
    try:
        return urlsplit(url.strip()).password
    except ValueError:
        return None
