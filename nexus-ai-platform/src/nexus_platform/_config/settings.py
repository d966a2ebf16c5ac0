"""Settings from the environment, parsed once at start-up into msgspec structs.

A field `backend_url` is read from the variable BACKEND_URL. An empty variable counts as unset.
Every invalid variable is reported, each on one line that names it. Each platform field carries its
description and group in `msgspec.Meta`; nexus_platform/_config/docs.py writes .env.example's platform part
and the README's settings table from them (the contract tests keep them equal). Fields whose type
carries `SECRET` are never logged or shown.
"""

import os
from collections.abc import Collection, Mapping
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import urlsplit

import msgspec

from nexus_platform._config.validation import field_errors
from nexus_platform._observability.redaction import MASK, redact_url
from nexus_platform._rules import KEBAB_CASE, SEMVER, SERVICE_NAME_MAX, anchored
from nexus_platform._sizing import described

SECRET = msgspec.Meta(extra={"secret": True})

Port = Annotated[int, msgspec.Meta(ge=1, le=65535)]
Seconds = Annotated[float, msgspec.Meta(gt=0, le=3600)]
NonNegativeSeconds = Annotated[float, msgspec.Meta(ge=0, le=3600)]
HttpUrlOrEmpty = Annotated[str, msgspec.Meta(pattern=r"^(https?://[^\s/?#]+[^\s]*)?$")]
UrlPath = Annotated[str, msgspec.Meta(pattern=r"^/[^\s]*$")]
LogLevel = Annotated[str, msgspec.Meta(pattern=r"^(?i:debug|info|warning|error|critical)$")]
EtcdUrls = Annotated[str, msgspec.Meta(pattern=r"^(https?://[^\s,/]+(,\s*https?://[^\s,/]+)*)?$")]
ServiceName = Annotated[str, msgspec.Meta(pattern=anchored(KEBAB_CASE), max_length=SERVICE_NAME_MAX)]

SettingsT = TypeVar("SettingsT", bound=msgspec.Struct)


class ConfigError(Exception):
    """The environment holds invalid settings; the message has one line per bad variable."""


class PlatformSettings(msgspec.Struct, frozen=True, kw_only=True):
    """The platform's settings. Each field's description and group (its section of .env.example) live
    here, in `msgspec.Meta`; `python -m nexus_platform settings` writes the documentation from them.
    `extra={"answer": ...}` names the template answer that a default comes from; `extra={"default_doc":
    ...}` says in words where a default read at start-up comes from (the variable is documented empty)."""

    service_name: Annotated[
        ServiceName,
        msgspec.Meta(
            description="Name reported in metadata, logs and OpenAPI (kebab-case)",
            extra={"group": "Identity", "answer": "service_name"},
        ),
    ] = "nexus-service"
    service_version: Annotated[
        str,
        msgspec.Meta(
            pattern=anchored(SEMVER),
            max_length=64,
            description="Version reported in metadata and OpenAPI (a semantic version); empty: the release's "
            "version",
            extra={"group": "Identity", "default_doc": "SERVICE_VERSION of release/service.env"},
        ),
    ] = "0.0.0"
    service_host: Annotated[
        str,
        msgspec.Meta(
            min_length=1,
            description="Address uvicorn listens on; the image sets 0.0.0.0, which needs API_KEYS",
            extra={"group": "Identity"},
        ),
    ] = "127.0.0.1"
    service_port: Annotated[
        Port,
        msgspec.Meta(description="Port uvicorn listens on", extra={"group": "Identity", "answer": "port"}),
    ] = 9000
    log_level: Annotated[
        LogLevel,
        msgspec.Meta(
            description="DEBUG, INFO (one JSON access line per request), WARNING, ERROR or CRITICAL",
            extra={"group": "Logging"},
        ),
    ] = "INFO"
    backend_url: Annotated[
        HttpUrlOrEmpty,
        msgspec.Meta(
            description="The HTTP service this one wraps (e.g. http://ollama:11434); when set, /readyz checks "
            "it; empty: no backend readiness check",
            extra={"group": "Backend"},
        ),
    ] = ""
    backend_health_path: Annotated[
        UrlPath,
        msgspec.Meta(
            description="Path of the backend's own health endpoint, requested by the readiness check",
            extra={"group": "Backend", "answer": "backend_health_path"},
        ),
    ] = "/health"
    backend_api_key: Annotated[
        str,
        SECRET,
        msgspec.Meta(
            description="Secret: sent by your code to the backend; never logged, never in metadata",
            extra={"group": "Backend"},
        ),
    ] = ""
    backend_timeout_seconds: Annotated[
        Seconds,
        msgspec.Meta(
            description="Timeout of each call through the shared HTTP client (the handler sees "
            "httpx.TimeoutException): a wrapper's non-streamed answer must be complete within it",
            extra={"group": "Backend", "default_doc": described("backend_timeout_seconds")},
        ),
    ] = 30.0
    backend_max_connections: Annotated[
        int,
        msgspec.Meta(
            ge=1,
            le=100_000,
            description="Connections of the shared HTTP client's pool (the backend's); with BACKEND_URL set, "
            "start-up refuses a MAX_CONCURRENT_REQUESTS above it, so no request waits for a connection. "
            "Readiness and registration use small clients of their own",
            extra={"group": "Backend"},
        ),
    ] = 64
    backend_keepalive_seconds: Annotated[
        Seconds,
        msgspec.Meta(
            description="An idle pooled connection is closed after this, before the backend closes it "
            "itself (servers commonly do after 5 s); a call whose connection was closed before any answer "
            "byte is tried once more",
            extra={"group": "Backend"},
        ),
    ] = 2.0
    backend_max_response_bytes: Annotated[
        int,
        msgspec.Meta(
            ge=1024,
            le=1 << 32,
            description="A wrapper's largest non-streamed backend answer (chat, embeddings, images): read as it "
            "arrives and held once, a larger one is answered 502 backend_response_too_large; it bounds the "
            "memory of each such request (mind the container's limit times MAX_CONCURRENT_REQUESTS)",
            extra={"group": "Backend"},
        ),
    ] = 32 << 20
    backend_max_event_bytes: Annotated[
        int,
        msgspec.Meta(
            ge=1024,
            le=1 << 30,
            description="A wrapper's longest line of a backend's event stream; a longer one ends the stream "
            "with an error event (backend_event_too_large) instead of being buffered",
            extra={"group": "Backend"},
        ),
    ] = 1 << 20
    strict_openai_fields: Annotated[
        bool,
        msgspec.Meta(
            description="true: an OpenAI request with a field the platform does not know is answered 400 "
            "naming it; false: such fields are accepted, and a wrapper forwards them to its backend as sent "
            "(Ollama's options and keep_alive, vLLM's top_k and repetition_penalty); the known fields are "
            "validated either way",
            extra={
                "group": "Backend",
                "default_doc": "false for a wrapper (backend answer openai), else true",
            },
        ),
    ] = True
    readiness_timeout_seconds: Annotated[
        Seconds,
        msgspec.Meta(
            description="Budget of each readiness check: a slower check fails as timed out, so /readyz never "
            "takes longer",
            extra={"group": "Readiness"},
        ),
    ] = 2.0
    readiness_cache_seconds: Annotated[
        float,
        msgspec.Meta(
            ge=0,
            lt=60,
            description="How long a readiness result is reused (probes from many replicas and load balancers)",
            extra={"group": "Readiness"},
        ),
    ] = 1.0
    request_timeout_seconds: Annotated[
        Seconds,
        msgspec.Meta(
            description="A request that has not started its answer within this is cancelled (the handler sees "
            "CancelledError; finally and async with clean up) and answered 504 timeout; a stream, once its first "
            "bytes are out, is bounded by STREAM_IDLE_TIMEOUT_SECONDS and STREAM_MAX_SECONDS instead",
            extra={"group": "Limits", "default_doc": described("request_timeout_seconds")},
        ),
    ] = 60.0
    stream_idle_timeout_seconds: Annotated[
        Seconds,
        msgspec.Meta(
            description="Most seconds between two chunks of a streaming answer; a longer stall ends the stream "
            "with an error event (a route may set its own)",
            extra={"group": "Limits"},
        ),
    ] = 30.0
    stream_max_seconds: Annotated[
        Seconds,
        msgspec.Meta(
            description="Most seconds for a whole streaming answer; longer streams end with an error event "
            "(a route may set its own)",
            extra={"group": "Limits"},
        ),
    ] = 3600.0
    max_concurrent_requests: Annotated[
        int,
        msgspec.Meta(
            ge=1,
            le=100_000,
            description="More concurrent requests than this are answered 503 overloaded at once, with "
            "Retry-After: 1 and X-Should-Retry: true; nothing queues, and probes and metadata never count",
            extra={"group": "Limits", "default_doc": described("max_concurrent_requests")},
        ),
    ] = 64
    max_body_bytes: Annotated[
        int,
        msgspec.Meta(
            ge=1024,
            le=1 << 30,
            description="Larger request bodies are answered 413, refused from Content-Length before the body "
            "is read",
            extra={"group": "Limits", "default_doc": described("max_body_bytes")},
        ),
    ] = 1 << 20
    max_header_bytes: Annotated[
        int,
        msgspec.Meta(
            ge=1024,
            le=1 << 20,
            description="A request line and headers larger than this are answered 431 headers_too_large and "
            "the connection closed; they are counted as they arrive, so a client sending more costs the "
            "server one socket read beyond the limit, never the whole header",
            extra={"group": "Limits"},
        ),
    ] = 16384
    api_keys: Annotated[
        str,
        SECRET,
        msgspec.Meta(
            description="Secret: the keys callers send (Authorization: Bearer, or x-api-key), comma-separated "
            "(several for rotation); each a key of at least 32 characters or sha256:<64 hex digits> of one. "
            "Every route but /health and /readyz then answers 401 without one. Required unless the service "
            "listens on a loopback address or ALLOW_UNAUTHENTICATED=true",
            extra={"group": "Access"},
        ),
    ] = ""
    metrics_api_keys: Annotated[
        str,
        SECRET,
        msgspec.Meta(
            description="Secret: keys for GET /metrics only, in the API_KEYS format (a scraper's key is not a "
            "client's); empty: /metrics takes the API_KEYS",
            extra={"group": "Access"},
        ),
    ] = ""
    allow_unauthenticated: Annotated[
        bool,
        msgspec.Meta(
            description="true: serve without API_KEYS on a non-loopback address (logged as a WARNING at "
            "start-up); for a service only reachable through something that authenticates",
            extra={"group": "Access"},
        ),
    ] = False
    allowed_hosts: Annotated[
        str,
        msgspec.Meta(
            pattern=r"^\s*(\*|[A-Za-z0-9.:\[\]-]+)(\s*,\s*(\*|[A-Za-z0-9.:\[\]-]+))*\s*$",
            description="Host header values served, comma-separated, without the port (.example.com: the "
            "domain and its subdomains; *: any). A request with no Host or two is answered 400 whatever this "
            "says; the probes answer any single Host",
            extra={"group": "Access"},
        ),
    ] = "*"
    max_concurrent_requests_per_caller: Annotated[
        int,
        msgspec.Meta(
            ge=0,
            le=100_000,
            description="Most concurrent requests of one caller (one key; without API_KEYS, one client "
            "address), answered 503 beyond it, so no caller takes every slot; 0: three quarters of "
            "MAX_CONCURRENT_REQUESTS. A gateway sending everyone's traffic with one key or from one address "
            "needs MAX_CONCURRENT_REQUESTS here",
            extra={"group": "Limits"},
        ),
    ] = 0
    max_body_seconds: Annotated[
        Seconds,
        msgspec.Meta(
            description="The whole request body must arrive within this many seconds of the request, however "
            "steady its pace (a slow body holds a concurrency slot at most this long); else 408 body_timeout",
            extra={"group": "Limits"},
        ),
    ] = 30.0
    # slow and silent clients (nexus_platform/_server/protocol.py, _http/exchange.py): cut off long before
    # REQUEST_TIMEOUT_SECONDS, so that they cannot hold connections or concurrency slots
    idle_timeout_seconds: Annotated[
        Seconds,
        msgspec.Meta(
            description="A connection with no request in progress (before its first byte, or kept alive "
            "between requests) is closed without an answer; a gateway that pools connections should drop "
            "idle ones sooner, or a request it sends just as the service closes one fails",
            extra={"group": "Limits"},
        ),
    ] = 5.0
    header_timeout_seconds: Annotated[
        Seconds,
        msgspec.Meta(
            description="A request whose line and headers take longer than this from its first byte is "
            "answered 408 header_timeout and the connection closed",
            extra={"group": "Limits"},
        ),
    ] = 10.0
    body_timeout_seconds: Annotated[
        Seconds,
        msgspec.Meta(
            description="A body falling this far behind MIN_BODY_BYTES_PER_SECOND is answered 408 "
            "body_timeout (Connection: close), and its concurrency slot is free again",
            extra={"group": "Limits"},
        ),
    ] = 10.0
    min_body_bytes_per_second: Annotated[
        int,
        msgspec.Meta(
            ge=1,
            le=1 << 30,
            description="The pace a request body must keep: each byte earns the client 1/this seconds of "
            "waiting, up to BODY_TIMEOUT_SECONDS in hand; time the handler spends elsewhere is not charged",
            extra={"group": "Limits"},
        ),
    ] = 1024
    openapi_viewer: Annotated[
        Literal["", "swagger"],
        msgspec.Meta(
            description="Empty: /schema serves the JSON document only. swagger: also a Swagger UI page at "
            "/schema/swagger, whose scripts load from a public CDN (needs internet; not for air-gapped "
            "clusters)",
            extra={"group": "OpenAPI"},
        ),
    ] = ""
    tls_cert_file: Annotated[
        str,
        msgspec.Meta(
            description="PEM file of the certificate (then its chain) the service presents; with TLS_KEY_FILE "
            "it serves HTTPS only (SERVICE_BASE_URL then starts with https://); empty: plain HTTP",
            extra={"group": "TLS"},
        ),
    ] = ""
    tls_key_file: Annotated[
        str,
        msgspec.Meta(
            description="PEM file of TLS_CERT_FILE's private key, not encrypted; its content is a secret: "
            "mount it read-only, never build it into the image",
            extra={"group": "TLS"},
        ),
    ] = ""
    tls_client_ca_file: Annotated[
        str,
        msgspec.Meta(
            description="Mutual TLS: PEM file of the CA certificates that sign the clients' certificates; "
            "a client without such a certificate cannot connect (probes included); empty: no client "
            "certificates asked for",
            extra={"group": "TLS"},
        ),
    ] = ""
    image_url_check: Annotated[
        bool,
        msgspec.Meta(
            description="Chat requests may carry image_url values only as data: URLs or https: URLs to "
            "IMAGE_URL_HOSTS; others are answered 400 invalid_image_url, so that a backend never fetches "
            "an internal address for a caller",
            extra={
                "group": "Outbound",
                "default_doc": "true for a wrapper (backend answer openai), else false",
            },
        ),
    ] = False
    image_url_hosts: Annotated[
        str,
        msgspec.Meta(
            pattern=r"^(\s*(\*\.)?[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*\s*(,\s*(\*\.)?[A-Za-z0-9_-]+"
            r"(\.[A-Za-z0-9_-]+)*\s*)*)?$",
            description="With IMAGE_URL_CHECK: the hosts https: image URLs may name, comma-separated "
            "(*.example.com: its subdomains); empty: any host but localhost and IP addresses that are "
            "loopback, private, link-local or otherwise not public (names are not resolved: list the hosts "
            "where names may point inside)",
            extra={"group": "Outbound"},
        ),
    ] = ""
    drain_seconds: Annotated[
        NonNegativeSeconds,
        msgspec.Meta(
            description="After SIGTERM: seconds of answering /readyz 503 while still serving, each response "
            "with Connection: close, before the listener closes",
            extra={"group": "Shutdown"},
        ),
    ] = 5.0
    shutdown_grace_seconds: Annotated[
        Seconds,
        msgspec.Meta(
            description="Then: seconds in-flight requests get to finish before they are cancelled (their "
            "clients see the connection close) and the process exits",
            extra={"group": "Shutdown"},
        ),
    ] = 20.0
    git_sha: Annotated[
        str,
        msgspec.Meta(
            max_length=64,
            description="Commit the image was built from, shown in metadata (a Dockerfile build argument)",
            extra={"group": "Identity"},
        ),
    ] = ""
    build_time: Annotated[
        str,
        msgspec.Meta(
            max_length=64,
            description="When the image was built, shown in metadata (a Dockerfile build argument)",
            extra={"group": "Identity"},
        ),
    ] = ""
    metrics_enabled: Annotated[
        bool,
        msgspec.Meta(
            description="GET /metrics (Prometheus) and the per-request counting behind it",
            extra={"group": "Metrics and tracing"},
        ),
    ] = True
    tracing_enabled: Annotated[
        bool,
        msgspec.Meta(
            description="W3C trace context: trace ids in log lines, traceparent forwarded on calls through "
            "the shared HTTP client",
            extra={"group": "Metrics and tracing"},
        ),
    ] = True
    log_buffer_bytes: Annotated[
        int,
        msgspec.Meta(
            ge=65536,
            le=1 << 30,
            description="Bytes of log lines held while stdout is not read; beyond this, lines are dropped "
            "and counted, never blocking the service",
            extra={"group": "Logging"},
        ),
    ] = 4 << 20
    etcd_url: Annotated[
        EtcdUrls,
        msgspec.Meta(
            description="etcd v3 endpoints, comma-separated, tried in order; empty: the service does not "
            "register. Compose: with this line absent from .env the service registers in the "
            "--profile registry etcd (http://etcd:2379)",
            extra={"group": "Registration", "feature": "registration"},
        ),
    ] = ""
    service_base_url: Annotated[
        HttpUrlOrEmpty,
        msgspec.Meta(
            description="How other hosts reach this instance (e.g. http://gpu-host-3:9000); required with "
            "ETCD_URL, never guessed",
            extra={"group": "Registration", "feature": "registration"},
        ),
    ] = ""
    etcd_lease_ttl_seconds: Annotated[
        int,
        msgspec.Meta(
            ge=2,
            le=3600,
            description="Lease TTL: a crashed instance disappears from etcd after this long; the lease is "
            "kept alive every TTL/3",
            extra={"group": "Registration", "feature": "registration"},
        ),
    ] = 15
    etcd_key_prefix: Annotated[
        str,
        msgspec.Meta(
            pattern=r"^/([^\s/]+/)*$",
            description="Each instance's key is this prefix + SERVICE_NAME + / + its instance id; the "
            "service's own key is this prefix + SERVICE_NAME",
            extra={"group": "Registration", "feature": "registration"},
        ),
    ] = "/nexus/services/"
    etcd_traefik_root: Annotated[
        str,
        msgspec.Meta(
            pattern=r"^([A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*)?$",
            description="Traefik's KV root key (Traefik's default: traefik): also write the keys Traefik "
            "routes /<SERVICE_NAME>/ by; empty: do not",
            extra={"group": "Registration", "feature": "registration"},
        ),
    ] = ""
    etcd_traefik_entrypoints: Annotated[
        str,
        msgspec.Meta(
            pattern=r"^([A-Za-z0-9_-]+(\s*,\s*[A-Za-z0-9_-]+)*)?$",
            description="Traefik entry points the generated routers attach to, comma-separated (e.g. web); "
            "required with ETCD_TRAEFIK_ROOT: a router without entry points would be served on every one, "
            "internet-facing ones included",
            extra={"group": "Registration", "feature": "registration"},
        ),
    ] = ""
    etcd_traefik_middlewares: Annotated[
        str,
        msgspec.Meta(
            pattern=r"^([A-Za-z0-9_@.-]+(\s*,\s*[A-Za-z0-9_@.-]+)*)?$",
            description="Traefik middlewares the generated routers apply after the prefix strip, comma-"
            "separated, in order (e.g. auth@file,ratelimit@file: defined in Traefik's own configuration, "
            "never in etcd); empty: none",
            extra={"group": "Registration", "feature": "registration"},
        ),
    ] = ""
    etcd_traefik_tls: Annotated[
        bool,
        msgspec.Meta(
            description="true: the generated routers serve HTTPS only (Traefik's router tls option, with "
            "the certificates of Traefik's configuration)",
            extra={"group": "Registration", "feature": "registration"},
        ),
    ] = False
    etcd_username: Annotated[
        str,
        msgspec.Meta(
            pattern=r"^[^\s]*$",
            description="etcd user the registration authenticates as (etcd auth enabled; a role granting "
            "read-write on this service's keys only: docs/registration.md); empty: no authentication",
            extra={"group": "Registration", "feature": "registration"},
        ),
    ] = ""
    etcd_password: Annotated[
        str,
        SECRET,
        msgspec.Meta(
            description="Secret: ETCD_USERNAME's password; never logged",
            extra={"group": "Registration", "feature": "registration"},
        ),
    ] = ""
    etcd_ca_file: Annotated[
        str,
        msgspec.Meta(
            description="PEM file of the CA certificates that sign etcd's server certificate (https:// "
            "endpoints); empty: the default trust store. The registration's client only, never the "
            "backend's",
            extra={"group": "Registration", "feature": "registration"},
        ),
    ] = ""
    etcd_cert_file: Annotated[
        str,
        msgspec.Meta(
            description="Mutual TLS with etcd: PEM file of the client certificate the registration presents "
            "(with ETCD_KEY_FILE); empty: none",
            extra={"group": "Registration", "feature": "registration"},
        ),
    ] = ""
    etcd_key_file: Annotated[
        str,
        msgspec.Meta(
            description="PEM file of ETCD_CERT_FILE's private key, not encrypted; its content is a secret: "
            "mount it read-only",
            extra={"group": "Registration", "feature": "registration"},
        ),
    ] = ""
    gpu_min_count: Annotated[
        int,
        msgspec.Meta(
            ge=0,
            le=64,
            description="Readiness fails while fewer GPUs than this are visible; 0 leaves GPUs out of "
            "readiness",
            extra={"group": "Readiness", "answer": "gpu_count", "feature": "gpu"},
        ),
    ] = 0
    gpu_metrics_interval_seconds: Annotated[
        float,
        msgspec.Meta(
            ge=0.5,
            le=3600,
            description="How often GPU memory, utilisation and temperature are read through NVML for "
            "/metrics, in seconds (in a thread, never while answering a request)",
            extra={"group": "Metrics and tracing", "feature": "gpu"},
        ),
    ] = 5.0


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


def load_settings(
    settings_type: type[SettingsT],
    environ: Mapping[str, str] | None = None,
    defaults: Mapping[str, object] | None = None,
) -> SettingsT:
    """Read `settings_type` from the environment over `defaults` (by field name: the defaults that come
    from the service's identity); raise ConfigError naming every bad variable."""
    environ = os.environ if environ is None else environ
    raw: dict[str, Any] = dict(defaults or {})
    # every setting is one line: a line break (a YAML block scalar, a secret file's last newline) would
    # pass the patterns' `$` and then never match (a key, a name), so it is refused, never stripped
    broken = []
    for field in msgspec.structs.fields(settings_type):
        value = environ.get(env_name(field.name), "")
        if "\n" in value or "\r" in value:
            broken.append(f"{env_name(field.name)}: holds a line break (a value is one line)")
        elif value != "":
            raw[field.name] = value
    try:
        settings = msgspec.convert(raw, settings_type, strict=False)
    except msgspec.ValidationError as error:
        problems = [
            f"{env_name(problem.field)}: {problem.message} (got {redact_url(repr(raw[problem.field]))})"
            if problem.field in raw and problem.field not in secret_fields(settings_type)
            else f"{env_name(problem.field)}: {problem.message}"
            for problem in field_errors(settings_type, raw, strict=False)
        ]
        raise ConfigError("; ".join(broken + (problems or [str(error)]))) from None
    if broken:
        raise ConfigError("; ".join(broken))
    return settings


# The optional features: a field with `extra={"feature": ...}` is a setting of that feature only, and the
# template answer that renders a service with it
FEATURE_ANSWERS = {"gpu": "gpu", "registration": "etcd_registration"}


def feature_of(field: msgspec.structs.FieldInfo) -> str:
    """The optional feature whose setting `field` is, or ""."""
    for meta in getattr(field.type, "__metadata__", ()):
        if isinstance(meta, msgspec.Meta) and meta.extra:
            return str(meta.extra.get("feature", ""))
    return ""


def redacted(settings: msgspec.Struct, features: Collection[str]) -> dict[str, Any]:
    """The settings of the service's `features` as a dict, secret values replaced and URL credentials
    removed: safe to log."""
    hidden = secret_fields(type(settings))
    shown = {}
    for field in msgspec.structs.fields(settings):
        if feature_of(field) not in {"", *features}:
            continue
        value = getattr(settings, field.name)
        if field.name in hidden and value:
            value = MASK
        elif isinstance(value, str):
            value = redact_url(value)
        shown[env_name(field.name)] = value
    return shown


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
                # a list of keys (API_KEYS) is hidden key by key too: a log line holds one, not the list
                values += [value, *(part.strip() for part in value.split(",") if part.strip())]
            elif "://" in value:
                values += [password for url in value.split(",") if (password := _password(url))]
    return values


def _password(url: str) -> str | None:
    try:
        return urlsplit(url.strip()).password
    except ValueError:
        return None
