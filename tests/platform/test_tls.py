"""TLS_CERT_FILE, TLS_KEY_FILE and TLS_CLIENT_CA_FILE (nexus_platform/_server/config.py): `python -m app`
serves HTTPS, with mutual TLS when asked, from a CA and certificates made in the test by trustme; unusable
TLS settings stop the start with one line naming the variable."""

import os
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import httpx2  # the HTTP client of the openai SDK
import openai
import pytest
import trustme
from nexus_platform._config.settings import ConfigError, PlatformSettings, load_settings
from nexus_platform._server.config import tls_context
from nexus_platform.testing import NexusService
from nexus_platform.testing._service import LiveService


@dataclass(frozen=True)
class Pki:
    """The files of a server CA and certificate, and of a client CA and a certificate it signed."""

    ca: Path
    cert: Path
    key: Path
    client_ca: Path
    client_cert: trustme.LeafCert
    other_key: Path  # the key of another certificate

    def client(self, *, with_certificate: bool) -> ssl.SSLContext:
        """A client's TLS context trusting the server's CA, presenting the client certificate or none."""
        context = ssl.create_default_context(cafile=str(self.ca))
        if with_certificate:
            self.client_cert.configure_cert(context)
        return context


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    folder = tmp_path_factory.mktemp("pki")
    ca, client_ca = trustme.CA(), trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    other = ca.issue_cert("other.example")
    ca.cert_pem.write_to_path(str(folder / "ca.pem"))
    client_ca.cert_pem.write_to_path(str(folder / "client-ca.pem"))
    (folder / "cert.pem").write_bytes(b"".join(pem.bytes() for pem in server.cert_chain_pems))
    server.private_key_pem.write_to_path(str(folder / "key.pem"))
    other.private_key_pem.write_to_path(str(folder / "other-key.pem"))
    return Pki(
        ca=folder / "ca.pem",
        cert=folder / "cert.pem",
        key=folder / "key.pem",
        client_ca=folder / "client-ca.pem",
        client_cert=client_ca.issue_cert("client@example.com"),
        other_key=folder / "other-key.pem",
    )


def https_url(live: LiveService) -> str:
    return f"https://127.0.0.1:{live.port}"


@pytest.fixture
def serve_tls(nexus_service: NexusService, tmp_path: Path, pki: Pki) -> Iterator[Callable[..., LiveService]]:
    """serve_tls(**environment) -> the example service as `python -m app` with the test certificate,
    once it answers GET /health over HTTPS; stopped (by its pid) after the test."""
    started: list[LiveService] = []

    def start(**environment: str) -> LiveService:
        tls = {"TLS_CERT_FILE": str(pki.cert), "TLS_KEY_FILE": str(pki.key), "DRAIN_SECONDS": "0"}
        live = LiveService(nexus_service, tmp_path, tls | environment)
        started.append(live)
        verify = pki.client(with_certificate=True)
        deadline = time.monotonic() + 60  # slack for a busy CI runner
        while True:
            assert live.process.poll() is None, f"exited with {live.process.returncode}:\n{live.log()}"
            try:
                if httpx.get(f"{https_url(live)}/health", verify=verify, timeout=1).status_code == 200:
                    return live
            except httpx.TransportError:
                pass  # not listening yet
            assert time.monotonic() < deadline, f"no HTTPS /health within 60 s:\n{live.log()}"
            time.sleep(0.05)

    yield start
    for live in started:
        live.stop()


@pytest.mark.slow
def test_https(serve_tls: Callable[..., LiveService], pki: Pki) -> None:
    live = serve_tls()
    answer = httpx.get(f"{https_url(live)}/health", verify=pki.client(with_certificate=False))
    assert answer.status_code == 200
    assert answer.json()["status"] == "pass"
    # HTTPS only: a plain HTTP request gets no answer, and a client that does not trust the CA refuses
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{live.port}/health", timeout=5)
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(f"{https_url(live)}/health", verify=ssl.create_default_context(), timeout=5)
    assert pki.key.read_text().splitlines()[1] not in live.log()  # the key is never written out


@pytest.mark.slow
def test_the_openai_sdk_over_https(serve_tls: Callable[..., LiveService], pki: Pki) -> None:
    live = serve_tls()
    with httpx2.Client(verify=pki.client(with_certificate=False)) as http:
        client = openai.OpenAI(
            base_url=f"{https_url(live)}/v1", api_key="not-checked", http_client=http, max_retries=0
        )
        completion = client.chat.completions.create(
            model="test-chat", messages=[{"role": "user", "content": "Say hello"}]
        )
        assert completion.choices[0].message.content == "Hello from the tests"
        streamed = client.chat.completions.create(
            model="test-chat", messages=[{"role": "user", "content": "Say hello"}], stream=True
        )
        assert "".join(chunk.choices[0].delta.content or "" for chunk in streamed if chunk.choices) == (
            "Hello from the tests"
        )


@pytest.mark.slow
def test_mutual_tls(serve_tls: Callable[..., LiveService], pki: Pki) -> None:
    live = serve_tls(TLS_CLIENT_CA_FILE=str(pki.client_ca))
    url = f"{https_url(live)}/v1/chat/completions"
    body = {"model": "test-chat", "messages": [{"role": "user", "content": "Say hello"}]}
    # TLS 1.3 finishes the client's side of the handshake first: the refusal may arrive with the first read
    with pytest.raises(httpx.TransportError):
        httpx.post(url, json=body, verify=pki.client(with_certificate=False), timeout=5)
    # a certificate from a CA the service does not trust is refused the same
    stranger = pki.client(with_certificate=False)
    trustme.CA().issue_cert("stranger@example.com").configure_cert(stranger)
    with pytest.raises(httpx.TransportError):
        httpx.post(url, json=body, verify=stranger, timeout=5)
    answer = httpx.post(url, json=body, verify=pki.client(with_certificate=True), timeout=10)
    assert answer.status_code == 200, answer.text
    with httpx2.Client(verify=pki.client(with_certificate=True)) as http:
        client = openai.OpenAI(
            base_url=f"{https_url(live)}/v1", api_key="not-checked", http_client=http, max_retries=0
        )
        assert client.models.list().data  # the SDK with a client certificate
    assert live.process.poll() is None  # refused handshakes cost the service nothing


def tls_settings(pki: Pki, **environment: str) -> PlatformSettings:
    return load_settings(
        PlatformSettings, {"TLS_CERT_FILE": str(pki.cert), "TLS_KEY_FILE": str(pki.key)} | environment
    )


def test_the_settings_make_a_server_context(pki: Pki) -> None:
    assert tls_context(load_settings(PlatformSettings, {})) is None  # plain HTTP
    context = tls_context(tls_settings(pki))
    assert context is not None
    assert context.verify_mode == ssl.CERT_NONE
    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2
    assert context.get_ca_certs() == []  # its own chain is not trusted for client certificates
    mutual = tls_context(tls_settings(pki, TLS_CLIENT_CA_FILE=str(pki.client_ca)))
    assert mutual is not None
    assert mutual.verify_mode == ssl.CERT_REQUIRED
    assert len(mutual.get_ca_certs()) == 1


@pytest.mark.parametrize(
    ("environment", "error"),
    [
        ({"TLS_KEY_FILE": ""}, "TLS_KEY_FILE: required when TLS_CERT_FILE is set"),
        ({"TLS_CERT_FILE": ""}, "TLS_CERT_FILE: required when TLS_KEY_FILE is set"),
        (
            {"TLS_CERT_FILE": "", "TLS_KEY_FILE": "", "TLS_CLIENT_CA_FILE": "{client_ca}"},
            "TLS_CLIENT_CA_FILE: ",
        ),
        ({"TLS_CERT_FILE": "/nonexistent/cert.pem"}, "TLS_CERT_FILE: cannot read /nonexistent/cert.pem"),
        ({"TLS_KEY_FILE": "/nonexistent/key.pem"}, "TLS_KEY_FILE: cannot read /nonexistent/key.pem"),
        ({"TLS_CERT_FILE": "{key}"}, "TLS_CERT_FILE: {key} holds no PEM certificate"),
        ({"TLS_KEY_FILE": "{cert}"}, "TLS_KEY_FILE: {cert} is not the unencrypted PEM private key"),
        ({"TLS_KEY_FILE": "{other_key}"}, "TLS_KEY_FILE: {other_key} is not the unencrypted PEM private key"),
        (
            {"TLS_CLIENT_CA_FILE": "/nonexistent/ca.pem"},
            "TLS_CLIENT_CA_FILE: /nonexistent/ca.pem: No such file",
        ),
        ({"TLS_CLIENT_CA_FILE": "{key}"}, "TLS_CLIENT_CA_FILE: {key}: holds no PEM certificate"),
        ({"SERVICE_BASE_URL": "http://host-3:9000"}, "SERVICE_BASE_URL: must start with https://"),
    ],
)
def test_unusable_settings_name_their_variable(pki: Pki, environment: dict[str, str], error: str) -> None:
    paths = {"cert": pki.cert, "key": pki.key, "other_key": pki.other_key, "client_ca": pki.client_ca}
    settings = tls_settings(pki, **{name: value.format(**paths) for name, value in environment.items()})
    with pytest.raises(ConfigError) as raised:
        tls_context(settings)
    assert str(raised.value).startswith(error.format(**paths))
    assert pki.key.read_text().splitlines()[1] not in str(raised.value)


@pytest.mark.slow
def test_an_unusable_key_stops_the_start_with_one_line(nexus_service: NexusService, pki: Pki) -> None:
    path = os.pathsep.join(filter(None, [str(nexus_service.import_root), os.environ.get("PYTHONPATH")]))
    environment = {"PYTHONPATH": path, "SERVICE_HOST": "127.0.0.1", "SERVICE_PORT": "1"}
    tls = {"TLS_CERT_FILE": str(pki.cert), "TLS_KEY_FILE": str(pki.other_key)}
    done = subprocess.run(
        [sys.executable, "-m", nexus_service.identity.package],
        cwd=nexus_service.root,
        env=os.environ | environment | tls,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == [
        f"configuration error: TLS_KEY_FILE: {pki.other_key} is not the unencrypted PEM private key of the "
        "certificate in TLS_CERT_FILE"
    ]
