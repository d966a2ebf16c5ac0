"""The gateway's settings (GATEWAY_*), read from the environment like the platform's.

Discovery from etcd uses the platform's registration settings (ETCD_URL, ETCD_USERNAME, ETCD_PASSWORD,
ETCD_CA_FILE, ETCD_CERT_FILE, ETCD_KEY_FILE, ETCD_KEY_PREFIX): a gateway that discovers through etcd is
rendered with `etcd_registration: true` and registers itself too. The static list is GATEWAY_SERVICES
plus every `<NAME>_BASE_URL` variable of the environment (SERVICE_BASE_URL, the gateway's own address,
excepted).
"""

import os
import re
from collections.abc import Mapping
from typing import Annotated
from urllib.parse import urlsplit

import msgspec

from nexus_platform._config.settings import SECRET, ConfigError
from nexus_platform._observability.redaction import redact_url

__all__ = ["GatewaySettings", "model_owners", "static_urls"]

_GROUP = {"group": "Gateway"}
_BASE_URL_VARIABLE = re.compile(r"^[A-Z][A-Z0-9_]*_BASE_URL$")
# the gateway's own address for its registration, never an upstream
_NOT_UPSTREAMS = frozenset({"SERVICE_BASE_URL"})


class GatewaySettings(msgspec.Struct, frozen=True, kw_only=True):
    """GATEWAY_* variables; a gateway's own settings may subclass this struct."""

    gateway_services: Annotated[
        str,
        msgspec.Meta(
            pattern=r"^[^\s]*$",
            description="Base URLs of the services to route to, comma-separated (e.g. "
            "http://chat:9000,http://tts:9000), besides every <NAME>_BASE_URL variable and, with ETCD_URL, "
            "the instances registered in etcd",
            extra=_GROUP,
        ),
    ] = ""
    gateway_service_api_key: Annotated[
        str,
        SECRET,
        msgspec.Meta(
            description="Secret: the key the gateway sends (Authorization: Bearer) to every service, for "
            "its /v1/metadata and /v1/models and for the requests it forwards; empty: none",
            extra=_GROUP,
        ),
    ] = ""
    gateway_model_owners: Annotated[
        str,
        msgspec.Meta(
            pattern=r"^([^\s=,]+=[a-z0-9-]+(,[^\s=,]+=[a-z0-9-]+)*)?$",
            description="The one service that serves a model, as model=service pairs, comma-separated (e.g. "
            "llama3:8b=chat,whisper-1=speech): another service listing that model gets none of its requests "
            "(a compromised service cannot draw them to itself); a model not named goes to every service "
            "that lists it",
            extra=_GROUP,
        ),
    ] = ""
    gateway_refresh_seconds: Annotated[
        float,
        msgspec.Meta(
            ge=0.2,
            le=3600,
            description="How often each instance's /v1/metadata and /v1/models are read again (and, for the "
            "static list, its readiness); etcd changes are followed at once through its watch",
            extra=_GROUP,
        ),
    ] = 5.0
    gateway_cooldown_seconds: Annotated[
        float,
        msgspec.Meta(
            ge=0,
            le=600,
            description="How long an instance that refused a connection, did not accept one within "
            "GATEWAY_CONNECT_TIMEOUT_SECONDS or answered 503 gets no requests while others can take them",
            extra=_GROUP,
        ),
    ] = 3.0
    gateway_connect_timeout_seconds: Annotated[
        float,
        msgspec.Meta(
            gt=0,
            le=60,
            description="Time to open a connection to an instance; past it the request tries another "
            "instance (the answer's own time is BACKEND_TIMEOUT_SECONDS)",
            extra=_GROUP,
        ),
    ] = 1.0
    gateway_max_connections: Annotated[
        int,
        msgspec.Meta(
            ge=1,
            le=65536,
            description="Connections the gateway keeps to all instances together (idle ones retire after "
            "BACKEND_KEEPALIVE_SECONDS)",
            extra=_GROUP,
        ),
    ] = 1024


def static_urls(settings: GatewaySettings, environ: Mapping[str, str] | None = None) -> list[str]:
    """The static list: GATEWAY_SERVICES, then each `<NAME>_BASE_URL` (sorted by name), without repeats;
    ConfigError naming the variable of a value that is not an http(s) URL."""
    environ = os.environ if environ is None else environ
    named = [("GATEWAY_SERVICES", url) for url in settings.gateway_services.split(",")]
    named += [
        (name, value)
        for name, value in sorted(environ.items())
        if _BASE_URL_VARIABLE.match(name) and name not in _NOT_UPSTREAMS
    ]
    urls = []
    for name, value in named:
        url = value.strip().rstrip("/")
        if not url:
            continue
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - "host:abc" raises here, at start-up
        except ValueError:
            parts = None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"{name}: {redact_url(url)!r} is not an http(s) URL with a host")
        urls.append(url)
    return list(dict.fromkeys(urls))


def model_owners(settings: GatewaySettings) -> dict[str, str]:
    """GATEWAY_MODEL_OWNERS as model -> service; ConfigError for a model named twice."""
    owners: dict[str, str] = {}
    for pair in filter(None, settings.gateway_model_owners.split(",")):
        model, _, service = pair.partition("=")
        if owners.setdefault(model, service) != service:
            raise ConfigError(f"GATEWAY_MODEL_OWNERS: {model!r} is given to {owners[model]} and to {service}")
    return owners
