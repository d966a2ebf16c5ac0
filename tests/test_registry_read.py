"""The read side (`nexus_template/registry.py`, `nexus-template services`) against a real etcd on 127.0.0.1:
only live, strictly parsed registrations are listed, everything else is a suspect, nothing from etcd reaches
the terminal raw, and a secured etcd is read with the service's own credentials (never printed)."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from nexus_template.cli import main as cli
from nexus_template.registry import (
    Change,
    Credentials,
    EtcdError,
    Snapshot,
    follow,
    list_instances,
    list_services,
    read,
)
from tests.etcd_server import ETCD, Etcd

pytestmark = pytest.mark.xdist_group("etcd")
PREFIX = "/nexus/services/"
NAME = "llm-proxy"
# what a terminal acts on: C0 controls but newline, DEL, C1 controls, bidi overrides
RAW_CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
CLEAR_SCREEN = "\x1b[2J"
OSC8_LINK = "\x1b]8;;http://attacker.example/\x07click here\x1b]8;;\x07"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def call(etcd: Etcd, path: str, body: dict, token: str | None = None) -> dict:
    headers = {"authorization": token} if token else {}
    answer = httpx.post(f"{etcd.url}/v3/{path}", json=body, headers=headers, timeout=5)
    assert answer.status_code == 200, answer.text
    return answer.json()


def grant(etcd: Etcd, ttl: int = 60, token: str | None = None) -> str:
    return call(etcd, "lease/grant", {"TTL": ttl}, token)["ID"]


def put(etcd: Etcd, key: str, value: str, lease: str = "0", token: str | None = None) -> None:
    call(etcd, "kv/put", {"key": b64(key), "value": b64(value), "lease": lease}, token)


def value_of(instance_id: str, name: str = NAME, base_url: str = "http://10.0.0.1:9000") -> dict:
    """A value exactly as the registrar writes it."""
    return {
        "name": name,
        "base_url": base_url,
        "metadata_url": f"{base_url}/v1/metadata",
        "version": "0.1.0",
        "capabilities": ["chat.completions"],
        "instance_id": instance_id,
        "readiness": "pass",
    }


def register(etcd: Etcd, instance_id: str, name: str = NAME, token: str | None = None) -> str:
    """An instance as the registrar puts it: its key and the service key, on its own lease."""
    lease = grant(etcd, token=token)
    value = value_of(instance_id, name)
    put(etcd, f"{PREFIX}{name}/{instance_id}", json.dumps(value), lease, token)
    put(
        etcd,
        f"{PREFIX}{name}",
        json.dumps({k: v for k, v in value.items() if k != "readiness"}),
        lease,
        token,
    )
    return lease


def reasons(snapshot: Snapshot) -> dict[str, str]:
    return {suspect["key"]: suspect["reason"] for suspect in snapshot.suspects}


def test_only_live_strictly_parsed_instance_keys_are_listed_the_rest_is_suspect(
    etcd: Etcd, capsys: pytest.CaptureFixture[str]
) -> None:
    register(etcd, "genuine")
    attacker = "http://203.0.113.9:80"
    put(etcd, f"{PREFIX}{NAME}/fake", json.dumps(value_of("fake", base_url=attacker)))  # no lease
    put(etcd, f"{PREFIX}other", json.dumps({**value_of("x", "other", attacker)}))  # lease-less service key
    put(etcd, f"{PREFIX}{NAME}/long", json.dumps(value_of("long", base_url=attacker)), grant(etcd, ttl=10**6))
    put(etcd, f"{PREFIX}{NAME}/garbled", '{"name": "llm-proxy", ', grant(etcd))
    put(etcd, f"{PREFIX}{NAME}/twice", '{"name": "llm-proxy", "name": "x"}', grant(etcd))
    elsewhere = {**value_of("meta"), "metadata_url": f"{attacker}/v1/metadata"}
    put(etcd, f"{PREFIX}{NAME}/meta", json.dumps(elsewhere), grant(etcd))
    put(etcd, f"{PREFIX}{NAME}/id", json.dumps(value_of("not-id")), grant(etcd))
    put(etcd, f"{PREFIX}{NAME}/a/b", json.dumps(value_of("b")), grant(etcd))

    snapshot = read(etcd.url)
    assert [(entry["kind"], entry["key"]) for entry in snapshot.entries] == [
        ("service", f"{PREFIX}{NAME}"),
        ("instance", f"{PREFIX}{NAME}/genuine"),
    ]
    assert [entry["instance_id"] for entry in list_instances(etcd.url)] == ["genuine"]
    assert [entry["instance_id"] for entry in list_services(etcd.url)] == ["genuine"]
    found = reasons(snapshot)
    assert found.keys() == {
        f"{PREFIX}{NAME}/{suffix}" for suffix in ("fake", "long", "garbled", "twice", "meta", "id", "a/b")
    } | {f"{PREFIX}other"}
    assert found[f"{PREFIX}{NAME}/fake"].startswith("no lease")
    assert found[f"{PREFIX}other"].startswith("no lease")
    assert "granted for 1000000 s" in found[f"{PREFIX}{NAME}/long"]
    assert found[f"{PREFIX}{NAME}/garbled"].startswith("value does not parse")
    assert "twice" in found[f"{PREFIX}{NAME}/twice"]
    assert "metadata_url" in found[f"{PREFIX}{NAME}/meta"]
    assert "instance_id differs" in found[f"{PREFIX}{NAME}/id"]
    assert "not a registration key" in found[f"{PREFIX}{NAME}/a/b"]

    assert cli(["services", "--etcd", etcd.url]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[2] for line in lines if not line.startswith("SUSPECT")] == ["-", "pass"]
    assert all(attacker not in line for line in lines if not line.startswith("SUSPECT")), lines
    assert {line.split()[1].rstrip(":") for line in lines if line.startswith("SUSPECT")} == found.keys()
    assert cli(["services", "--etcd", etcd.url, "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [entry["kind"] for entry in listed] == ["service", "instance"] + ["suspect"] * len(found)
    assert all(attacker not in entry.get("base_url", "") for entry in listed if entry["kind"] != "suspect")


def test_a_key_on_another_instances_lease_and_a_service_key_naming_no_live_instance_are_suspect(
    etcd: Etcd,
) -> None:
    lease = register(etcd, "victim")
    put(etcd, f"{PREFIX}{NAME}/rider", json.dumps(value_of("rider", base_url="http://203.0.113.9")), lease)
    register(etcd, "fine", name="embedder")
    put(
        etcd,
        f"{PREFIX}embedder",
        json.dumps({**value_of("fine", "embedder"), "base_url": "http://203.0.113.9"}),
    )

    snapshot = read(etcd.url)
    assert [entry["key"] for entry in snapshot.entries] == [f"{PREFIX}embedder/fine"]
    found = reasons(snapshot)
    assert found[f"{PREFIX}{NAME}/victim"] == f"its lease also holds {PREFIX}{NAME}/rider"
    assert found[f"{PREFIX}{NAME}/rider"] == f"its lease also holds {PREFIX}{NAME}/victim"
    assert found[f"{PREFIX}{NAME}"] == "names no listed instance key on its own lease"
    assert found[f"{PREFIX}embedder"].startswith("no lease")


def test_control_characters_from_etcd_are_never_printed(
    etcd: Etcd, capsys: pytest.CaptureFixture[str]
) -> None:
    put(etcd, f"{PREFIX}{NAME}/{CLEAR_SCREEN}", json.dumps(value_of(CLEAR_SCREEN)), grant(etcd))
    put(etcd, f"{PREFIX}{NAME}/osc8", json.dumps({**value_of("osc8"), "version": OSC8_LINK}), grant(etcd))
    put(etcd, f"{PREFIX}{NAME}/bell\x07\r\x7f\x9b\u202e", "\x1b[31mred\x07", grant(etcd))
    for options in ([], ["--json"]):
        assert cli(["services", "--etcd", etcd.url, *options]) == 0
        out = capsys.readouterr().out
        assert not RAW_CONTROL.search(out), repr(out)
        assert out.count("SUSPECT" if not options else '"suspect"') == 3
    assert cli(["services", "--etcd", etcd.url]) == 0
    table = capsys.readouterr().out
    assert f"SUSPECT {PREFIX}{NAME}/\\x1b[2J: value does not parse" in table
    assert f"SUSPECT {PREFIX}{NAME}/bell\\x07\\r\\x7f\\x9b\\u202e: value does not parse" in table


def test_watch_turns_an_overwritten_registration_into_a_suspect(etcd: Etcd) -> None:
    register(etcd, "a")
    stream: Iterator[Snapshot | Change] = follow(etcd.url)
    first = next(stream)
    assert isinstance(first, Snapshot)
    assert [entry["key"] for entry in first.entries] == [f"{PREFIX}{NAME}", f"{PREFIX}{NAME}/a"]
    put(etcd, f"{PREFIX}{NAME}/a", json.dumps(value_of("a", base_url="http://203.0.113.9")))  # lease-less now
    changes = [next(stream), next(stream)]
    assert [(c.type, c.key) for c in changes if isinstance(c, Change)] == [
        ("suspect", f"{PREFIX}{NAME}"),
        ("suspect", f"{PREFIX}{NAME}/a"),
    ]
    call(etcd, "kv/deleterange", {"key": b64(f"{PREFIX}{NAME}/a")})
    change = next(stream)
    assert isinstance(change, Change)
    assert (change.type, change.key, change.entry) == ("delete", f"{PREFIX}{NAME}/a", None)
    register(etcd, "b")  # its instance key, then the service key: both listed, in one batch or two
    added = [next(stream), next(stream)]
    assert {(c.type, c.key) for c in added if isinstance(c, Change)} == {
        ("put", f"{PREFIX}{NAME}/b"),
        ("put", f"{PREFIX}{NAME}"),
    }


ROOT_PASSWORD = "root-secret-4f1c"
READER_PASSWORD = "reader-secret-9d2e"


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[tuple[Etcd, str]]:
    """etcd with auth enabled: root, and a reader whose role may only read the prefix; a registration put
    with root's token. Yields etcd and root's token."""
    if ETCD is None:
        pytest.skip("no etcd binary: install Debian's etcd-server (.ci/run does)")
    server = Etcd(tmp_path / "etcd-data").start()
    try:
        call(server, "auth/user/add", {"name": "root", "password": ROOT_PASSWORD})
        call(server, "auth/user/grant", {"user": "root", "role": "root"})
        call(server, "auth/role/add", {"name": "registry-reader"})
        read_prefix = {"permType": "READ", "key": b64(PREFIX), "range_end": b64("/nexus/services0")}
        call(server, "auth/role/grant", {"name": "registry-reader", "perm": read_prefix})
        call(server, "auth/user/add", {"name": "gateway", "password": READER_PASSWORD})
        call(server, "auth/user/grant", {"user": "gateway", "role": "registry-reader"})
        call(server, "auth/enable", {})
        token = call(server, "auth/authenticate", {"name": "root", "password": ROOT_PASSWORD})["token"]
        register(server, "a", token=token)
        yield server, token
    finally:
        server.stop()


def test_a_secured_etcd_is_read_with_credentials_that_are_never_printed(
    secured: tuple[Etcd, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    etcd, _root = secured
    with pytest.raises(EtcdError, match="user name is empty"):
        read(etcd.url)
    credentials = Credentials(username="gateway", password=READER_PASSWORD)
    assert READER_PASSWORD not in repr(credentials)
    assert [entry["instance_id"] for entry in list_instances(etcd.url, credentials=credentials)] == ["a"]

    assert (
        cli(["services", "--etcd", etcd.url, "--etcd-username", "gateway", "--etcd-password", "wrong-pw"])
        == 1
    )
    refused = capsys.readouterr()
    assert "refused the credentials of user 'gateway'" in refused.err
    assert "wrong-pw" not in refused.out + refused.err
    monkeypatch.setenv("ETCD_USERNAME", "gateway")
    monkeypatch.setenv("ETCD_PASSWORD", READER_PASSWORD)
    assert cli(["services", "--etcd", etcd.url, "--json"]) == 0
    out = capsys.readouterr()
    assert [entry["key"] for entry in json.loads(out.out)] == [f"{PREFIX}{NAME}", f"{PREFIX}{NAME}/a"]
    assert READER_PASSWORD not in out.out + out.err
    assert cli(["services", "--etcd", f"http://gateway:{READER_PASSWORD}@127.0.0.1:{etcd.port}"]) == 1
    assert READER_PASSWORD not in capsys.readouterr().err


def test_watch_on_a_secured_etcd_renews_a_token_etcd_no_longer_accepts(secured: tuple[Etcd, str]) -> None:
    etcd, _root = secured
    stream = follow(etcd.url, credentials=Credentials(username="gateway", password=READER_PASSWORD))
    first = next(stream)
    assert isinstance(first, Snapshot)
    assert len(first.entries) == 2
    # restarting etcd forgets every simple token: the reader's watch, opened after it, is answered 401 and
    # logs in again
    etcd.stop()
    etcd.start()
    root = call(etcd, "auth/authenticate", {"name": "root", "password": ROOT_PASSWORD})["token"]
    put(etcd, f"{PREFIX}{NAME}/b", json.dumps(value_of("b")), grant(etcd, token=root), root)
    change = next(stream)
    assert isinstance(change, Change)
    assert (change.type, change.key) == ("put", f"{PREFIX}{NAME}/b")
