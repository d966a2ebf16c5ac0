"""`python -m nexus_platform etcd-init` (compose's one-shot) against a real etcd: a service's user writes its
own keys only; a gateway's (`--gateway`) also reads every registration, and still writes none of them."""

import base64
import contextlib
import io
from pathlib import Path

import pytest
from nexus_platform._registration.role import etcd_init

from tests.etcd_server import Etcd

pytestmark = pytest.mark.xdist_group("etcd")


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _initialised(etcd: Etcd, user: str, *, gateway: bool) -> str:
    """etcd-init for service `user` (its etcd user has its name); that user's token."""
    environ = {
        "ETCD_URL": etcd.url,
        "ETCD_ROOT_PASSWORD": "root-password-for-tests",
        "ETCD_USERNAME": user,
        "ETCD_PASSWORD": f"{user}-password",
        "SERVICE_NAME": user,
    }
    with contextlib.redirect_stdout(io.StringIO()) as said:
        assert etcd_init(user, environ, gateway=gateway) == 0
    assert ("reads the registrations" in said.getvalue()) is gateway
    return etcd.authenticate(user, f"{user}-password")


def _reads_all(etcd: Etcd, token: str) -> int:
    body = {"key": _b64("/nexus/services/"), "range_end": _b64("/nexus/services0")}
    return etcd.post("kv/range", body, token).status_code


def _writes(etcd: Etcd, token: str, key: str) -> int:
    return etcd.post("kv/put", {"key": _b64(key), "value": _b64("{}")}, token).status_code


def test_a_gateway_reads_every_registration_and_writes_only_its_own(etcd: Etcd, tmp_path: Path) -> None:
    service = _initialised(etcd, "chat", gateway=False)
    assert _writes(etcd, service, "/nexus/services/chat/instance-1") == 200
    assert _reads_all(etcd, service) != 200  # a service sees its own keys only

    gateway = _initialised(etcd, "gateway", gateway=True)
    assert _reads_all(etcd, gateway) == 200
    assert _writes(etcd, gateway, "/nexus/services/gateway/instance-1") == 200
    assert _writes(etcd, gateway, "/nexus/services/chat/instance-2") != 200  # read, never write

    # run again (compose runs it at every `up`): the same grants, converged, not piled up
    again = _initialised(etcd, "gateway", gateway=True)
    assert _reads_all(etcd, again) == 200
    assert _writes(etcd, again, "/nexus/services/chat/instance-2") != 200
