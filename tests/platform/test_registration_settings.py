"""The registration's settings that do not go together are refused at start-up, one line each, naming the
variable and never showing a password (nexus_platform._registration.config)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from nexus_platform import ConfigError
from nexus_platform._registration.registrar import traefik_keys
from nexus_platform.testing import NexusService

REGISTERING = {"ETCD_URL": "http://127.0.0.1:2379", "SERVICE_BASE_URL": "http://10.0.0.1:9000"}


@pytest.fixture
def registering(nexus_service: NexusService) -> NexusService:
    return dataclasses.replace(
        nexus_service, identity=dataclasses.replace(nexus_service.identity, registration=True)
    )


@pytest.mark.parametrize(
    ("environment", "refusal"),
    [
        ({"ETCD_USERNAME": "svc"}, "ETCD_PASSWORD: required when ETCD_USERNAME is set"),
        ({"ETCD_PASSWORD": "hunter2-hunter2"}, "ETCD_USERNAME: required when ETCD_PASSWORD is set"),
        ({"ETCD_CERT_FILE": "/c.pem"}, "ETCD_KEY_FILE: required when ETCD_CERT_FILE is set"),
        ({"ETCD_KEY_FILE": "/k.pem"}, "ETCD_CERT_FILE: required when ETCD_KEY_FILE is set"),
        ({"ETCD_CA_FILE": "/ca.pem"}, "ETCD_CA_FILE: set, but no ETCD_URL endpoint starts with https://"),
        (
            {"ETCD_TRAEFIK_ROOT": "traefik"},
            "ETCD_TRAEFIK_ENTRYPOINTS: required when ETCD_TRAEFIK_ROOT is set",
        ),
        ({"ETCD_TRAEFIK_TLS": "true"}, "ETCD_TRAEFIK_TLS: has no effect without ETCD_TRAEFIK_ROOT"),
        ({"ETCD_TRAEFIK_MIDDLEWARES": "auth@file"}, "ETCD_TRAEFIK_MIDDLEWARES: has no effect without"),
    ],
)
def test_incomplete_combinations_are_refused_in_one_line(
    registering: NexusService, environment: dict[str, str], refusal: str
) -> None:
    with pytest.raises(ConfigError) as refused:
        registering.create_app(environ={**REGISTERING, **environment})
    message = str(refused.value)
    assert message.startswith(refusal)
    assert "\n" not in message
    assert "hunter2" not in message


def test_unreadable_or_invalid_tls_files_are_refused(registering: NexusService, tmp_path: Path) -> None:
    not_pem = tmp_path / "ca.pem"
    not_pem.write_text("not a certificate")
    secure = {**REGISTERING, "ETCD_URL": "https://127.0.0.1:2379"}
    with pytest.raises(ConfigError, match=r"^ETCD_CA_FILE: .*ca.pem holds no PEM certificate$"):
        registering.create_app(environ={**secure, "ETCD_CA_FILE": str(not_pem)})
    with pytest.raises(ConfigError, match=r"^ETCD_CERT_FILE: cannot read it or ETCD_KEY_FILE"):
        registering.create_app(
            environ={**secure, "ETCD_CERT_FILE": str(tmp_path / "none"), "ETCD_KEY_FILE": str(tmp_path / "k")}
        )


def test_a_complete_secured_configuration_starts(registering: NexusService) -> None:
    assert (
        registering.create_app(
            environ={
                **REGISTERING,
                "ETCD_USERNAME": "llm-proxy",
                "ETCD_PASSWORD": "hunter2-hunter2",
                "ETCD_TRAEFIK_ROOT": "traefik",
                "ETCD_TRAEFIK_ENTRYPOINTS": "web, internal",
                "ETCD_TRAEFIK_MIDDLEWARES": "auth@file",
                "ETCD_TRAEFIK_TLS": "true",
            }
        )
        is not None
    )


def test_the_routers_keys_carry_entry_points_middlewares_and_tls() -> None:
    keys = traefik_keys("traefik", "svc", "i1", "https://10.0.0.1:9000", ["web"], ["auth@file"], tls=True)
    assert keys == {
        "traefik/http/routers/svc_i1/rule": "PathPrefix(`/svc/`)",
        "traefik/http/routers/svc_i1/service": "svc",
        "traefik/http/routers/svc_i1/entryPoints/0": "web",
        "traefik/http/routers/svc_i1/middlewares/0": "svc_i1",
        "traefik/http/routers/svc_i1/middlewares/1": "auth@file",
        "traefik/http/routers/svc_i1/tls": "true",
        "traefik/http/middlewares/svc_i1/stripPrefix/prefixes/0": "/svc",
        "traefik/http/services/svc/loadBalancer/servers/i1/url": "https://10.0.0.1:9000",
    }
