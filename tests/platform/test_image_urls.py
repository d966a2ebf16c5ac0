"""IMAGE_URL_CHECK: chat requests may carry image URLs only as data: URLs or https: URLs to allowed hosts
(nexus_platform/openai/_image_urls.py), on by default for a wrapper, off for other services."""

import socket
from collections.abc import Callable
from typing import Any

import msgspec
import pytest
from nexus_platform import Identity
from nexus_platform._config.settings import ConfigError, PlatformSettings, load_settings
from nexus_platform.openai import ChatCompletionRequest
from nexus_platform.openai._image_urls import image_url_problems
from nexus_platform.testing import Client

PNG = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
REFUSED = [
    "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
    "file:///etc/passwd",
    "https://127.0.0.1/",
    "https://[::1]/",
]
ACCEPTED = [PNG, "https://example.com/x.png"]


def chat(*urls: Any) -> dict[str, Any]:
    """A chat request with one user message: a text part, then an image part per URL."""
    parts: list[dict[str, Any]] = [{"type": "text", "text": "What is in these images?"}]
    parts += [{"type": "image_url", "image_url": {"url": url}} for url in urls]
    return {"model": "test-chat", "messages": [{"role": "user", "content": parts}]}


def problems(*urls: Any, **environment: str) -> list[tuple[str, str]]:
    """The problems the check finds in a request with `urls`, IMAGE_URL_CHECK on."""
    settings = load_settings(PlatformSettings, {"IMAGE_URL_CHECK": "true", **environment})
    return image_url_problems(msgspec.convert(chat(*urls), ChatCompletionRequest), settings)


@pytest.fixture
def chat_service(make_identity: Callable[..., Identity]) -> Identity:
    return make_identity(capabilities=("chat.completions",))


def test_every_refused_url_is_listed_with_where_it_is(
    make_client: Callable[..., Client], chat_service: Identity
) -> None:
    client = make_client(identity=chat_service, IMAGE_URL_CHECK="true")
    answer = client.post("/v1/chat/completions", json=chat(*REFUSED))
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["code"] == "invalid_image_url"
    assert error["type"] == "invalid_request_error"
    assert error["param"] == "messages[0].content[1].image_url.url"
    for number in range(1, len(REFUSED) + 1):
        assert f"`messages[0].content[{number}].image_url.url`" in error["message"]
    assert "`file:`" in error["message"]
    assert "`http:`" in error["message"]
    assert "`127.0.0.1`" in error["message"]
    assert "`::1`" in error["message"]


def test_data_and_public_https_urls_are_answered(
    make_client: Callable[..., Client], chat_service: Identity
) -> None:
    client = make_client(identity=chat_service, IMAGE_URL_CHECK="true")
    answer = client.post("/v1/chat/completions", json=chat(*ACCEPTED))
    assert answer.status_code == 200, answer.text
    assert answer.json()["choices"][0]["message"]["content"] == "Hello from the tests"


def test_a_service_that_is_not_a_wrapper_does_not_check_by_default(
    make_client: Callable[..., Client], chat_service: Identity
) -> None:
    answer = make_client(identity=chat_service).post("/v1/chat/completions", json=chat(*REFUSED))
    assert answer.status_code == 200, answer.text


def test_a_wrapper_checks_by_default_before_calling_its_backend(
    make_client: Callable[..., Client], make_identity: Callable[..., Identity]
) -> None:
    wrapper = make_identity(capabilities=("chat.completions",), backend="openai")
    client = make_client(identity=wrapper)
    refused = client.post("/v1/chat/completions", json=chat("http://169.254.169.254/"))
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "invalid_image_url"
    # an accepted URL goes on to the backend, which this wrapper has none of
    accepted = client.post("/v1/chat/completions", json=chat(PNG))
    assert accepted.status_code == 503
    assert accepted.json()["error"]["code"] == "backend_not_configured"
    unchecked = make_client(identity=wrapper, IMAGE_URL_CHECK="false")
    answer = unchecked.post("/v1/chat/completions", json=chat("http://169.254.169.254/"))
    assert answer.json()["error"]["code"] == "backend_not_configured"


@pytest.mark.parametrize(
    "url",
    [
        "HTTP://example.com/x.png",
        "ftp://example.com/x.png",
        "gopher://127.0.0.1:6379/_INFO",
        "//example.com/x.png",
        "example.com/x.png",
        "https://localhost/x.png",
        "https://api.localhost/x.png",
        "https://10.0.0.5/x.png",
        "https://192.168.1.1/x.png",
        "https://172.16.0.1/x.png",
        "https://100.64.0.1/x.png",  # shared address space (carrier NAT)
        "https://169.254.169.254./latest",
        "https://0.0.0.0/x.png",
        "https://[fe80::1%25eth0]/x.png",
        "https://[fd00::1]/x.png",
        "https://[::ffff:127.0.0.1]/x.png",
        "https://127.1/x.png",  # inet_aton's short forms, which resolvers accept
        "https://2130706433/x.png",
        "https://0x7f.0.0.1/x.png",
        "https://user@127.0.0.1/x.png",
        "https://example.com@10.0.0.1/x.png",
        "https://example.com\\@10.0.0.1/x.png",  # a backslash: parsers disagree on the host
        "https://exa mple.com/x.png",
        "https:///x.png",
        "https://[::1/x.png",
        # what fetchers map to ASCII (httpx and the idna codec read 127。0。0。1 as 127.0.0.1)
        "https://127\u30020\u30020\u30021/x.png",
        "https://127\uff0e0\uff0e0\uff0e1/",
        "https://\uff11\uff12\uff17.0.0.1/",
        "https://\u24db\u24de\u24d2\u24d0\u24db\u24d7\u24de\u24e2\u24e3/",  # circled "localhost"
        "https://%31%32%37.0.0.1/",
        # IPv4 inside IPv6: IPv4-compatible, NAT64, 6to4
        "https://[::7f00:1]/",
        "https://[64:ff9b::a9fe:a9fe]/",
        "https://[2002:a9fe:a9fe::]/",
        None,
        42,
    ],
)
def test_refused(url: Any) -> None:
    [(param, _)] = problems(url)
    assert param == "messages[0].content[1].image_url.url"


@pytest.mark.parametrize(
    "url",
    [
        PNG,
        "DATA:image/jpeg;base64,/9j/",
        "https://example.com/x.png",
        "HTTPS://Example.COM:8443/a/b.png?size=1#top",
        "https://93.184.215.14/x.png",  # a public address
        "https://[2606:2800:21f:cb07:6820:80da:af6b:8b2c]/x.png",
        "https://localhost.example.com/x.png",
    ],
)
def test_accepted_without_resolving_a_name(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_lookups(*args: object, **kwargs: object) -> None:
        raise AssertionError("the check resolved a name")

    monkeypatch.setattr(socket, "getaddrinfo", no_lookups)
    monkeypatch.setattr(socket, "gethostbyname", no_lookups)
    assert problems(url) == []


def test_allowed_hosts_only(monkeypatch: pytest.MonkeyPatch) -> None:
    hosts = {"IMAGE_URL_HOSTS": "images.example.com, *.cdn.example.net,10.1.2.3"}
    assert problems("https://images.example.com/x.png", **hosts) == []
    assert problems("https://IMAGES.example.com./x.png", **hosts) == []
    assert problems("https://eu.cdn.example.net/x.png", **hosts) == []
    assert problems("https://10.1.2.3/x.png", **hosts) == []  # listed: the operator's choice
    assert problems(PNG, **hosts) == []
    for url in [
        "https://example.com/x.png",
        "https://cdn.example.net/x.png",  # *. allows subdomains, not the domain itself
        "https://images.example.com.evil.net/x.png",
        "https://evilimages.example.com/x.png",
        "http://images.example.com/x.png",
    ]:
        assert len(problems(url, **hosts)) == 1, url


def test_a_malformed_host_list_is_refused_at_start_up() -> None:
    with pytest.raises(ConfigError, match="IMAGE_URL_HOSTS"):
        load_settings(PlatformSettings, {"IMAGE_URL_HOSTS": "https://images.example.com/"})


def test_parts_are_located_in_every_message() -> None:
    body = chat(PNG)
    body["messages"] = [
        {"role": "system", "content": "Describe images."},
        body["messages"][0],
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "file:///etc/shadow"}}]},
        {"role": "user", "content": [{"type": "image_url", "image_url": {"detail": "low"}}]},
    ]
    settings = load_settings(PlatformSettings, {"IMAGE_URL_CHECK": "true"})
    found = image_url_problems(msgspec.convert(body, ChatCompletionRequest), settings)
    assert [param for param, _ in found] == [
        "messages[2].content[0].image_url.url",
        "messages[3].content[0].image_url.url",
    ]
