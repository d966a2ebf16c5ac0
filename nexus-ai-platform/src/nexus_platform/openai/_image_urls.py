"""IMAGE_URL_CHECK: a chat request's image URLs are `data:` URLs or `https:` URLs to allowed hosts.

A backend that fetches `image_url` values itself (vLLM, Ollama, a hosted API) would otherwise fetch any
address a caller names, from inside the network: cloud metadata (`http://169.254.169.254/`), local files
(`file:///etc/passwd`), internal services. The check reads the URL only, nothing is resolved or fetched,
so a public name that points inside passes unless IMAGE_URL_HOSTS lists the hosts allowed.
"""

import ipaddress
import socket
from functools import lru_cache
from urllib.parse import urlsplit

from nexus_platform._config.settings import PlatformSettings
from nexus_platform._http.errors import _MAX_PROBLEMS, ServiceError, _clipped
from nexus_platform.openai._chat import ChatCompletionRequest

__all__ = ["check_image_urls", "image_url_problems"]

# characters that URL parsers read differently (a backslash is a slash to browsers and WHATWG parsers, not
# to urllib), so that the host checked here could differ from the host a backend fetches
_AMBIGUOUS = frozenset("\\ \x7f") | frozenset(map(chr, range(0x20)))
_REFUSED_NAMES = ("localhost", "localhost.localdomain")


@lru_cache(maxsize=8)
def _allowed(hosts: str) -> tuple[frozenset[str], tuple[str, ...]]:
    """IMAGE_URL_HOSTS as (exact hosts, parent domains whose subdomains are allowed)."""
    entries = [entry.strip().lower() for entry in hosts.split(",") if entry.strip()]
    exact = frozenset(entry for entry in entries if not entry.startswith("*."))
    return exact, tuple(entry[1:] for entry in entries if entry.startswith("*."))


# IPv4-compatible, NAT64 and 6to4 addresses carry an IPv4 address a gateway may deliver to (::7f00:1,
# 64:ff9b::a9fe:a9fe, 2002:a9fe:a9fe::): refused, whatever the address inside
_IPV4_IN_IPV6 = tuple(ipaddress.ip_network(network) for network in ("::/96", "64:ff9b::/96", "2002::/16"))


def _ip_literal(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address a host written as an IP literal names, in any notation a backend's resolver accepts
    (`127.1`, `2130706433` and `0x7f.0.0.1` are 127.0.0.1 to inet_aton); None for a name."""
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])  # an IPv6 zone (fe80::1%eth0) names no other host
    except ValueError:
        pass
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


def _address_problem(address: ipaddress.IPv4Address | ipaddress.IPv6Address, host: str) -> str | None:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped  # ::ffff:127.0.0.1 reaches 127.0.0.1
    if any(address in network for network in _IPV4_IN_IPV6):
        return f"names the address `{_clipped(host)}`, an IPv4 address in IPv6 form"
    if address.is_global and not address.is_multicast:
        return None
    return f"names the address `{_clipped(host)}`, which is not public"


def _host_problem(host: str, settings: PlatformSettings) -> str | None:
    if settings.image_url_hosts:
        exact, parents = _allowed(settings.image_url_hosts)
        if host in exact or host.endswith(parents):
            return None
        return f"names the host `{_clipped(host)}`, which IMAGE_URL_HOSTS does not list"
    address = _ip_literal(host)
    if address is not None:
        return _address_problem(address, host)
    if host in _REFUSED_NAMES or host.endswith(".localhost"):
        return f"names the host `{_clipped(host)}`, which is this machine"
    return None


def _url_problem(url: object, settings: PlatformSettings) -> str | None:
    """Why an image URL is refused, or None."""
    if not isinstance(url, str):
        return "must be a string: a data: URL or an https: URL"
    scheme = url.partition(":")[0].lower() if ":" in url else ""
    if scheme == "data":
        return None
    if scheme != "https":
        shown = f"`{_clipped(scheme)}:`" if scheme else "none"
        return f"must be a data: URL or an https: URL (its scheme: {shown})"
    return _https_problem(url, settings)


def _https_problem(url: str, settings: PlatformSettings) -> str | None:
    if any(character in _AMBIGUOUS for character in url):
        return "is not a well-formed URL (a backslash, space or control character)"
    try:
        host = urlsplit(url).hostname
    except ValueError:
        return "is not a well-formed URL"
    if not host:
        return "is not a well-formed URL (no host)"
    if not host.isascii() or "%" in host:
        # fetchers map full-width and circled characters, ideographic dots and %XX to ASCII (127。0。0。1 is
        # 127.0.0.1 to httpx and to the idna codec): a host must be written as the ASCII it means
        return "has a host with non-ASCII or percent-encoded characters (write an IDNA name as xn--)"
    return _host_problem(host.rstrip("."), settings)


def image_url_problems(request: ChatCompletionRequest, settings: PlatformSettings) -> list[tuple[str, str]]:
    """(param, message) for each refused image URL of `request`, in message and part order."""
    problems: list[tuple[str, str]] = []
    for index, message in enumerate(request.messages):
        if not isinstance(message.content, list):
            continue
        for number, part in enumerate(message.content):
            if part.image_url is None:
                continue
            problem = _url_problem(part.image_url.get("url"), settings)
            if problem is not None:
                problems.append((f"messages[{index}].content[{number}].image_url.url", problem))
    return problems


def check_image_urls(request: ChatCompletionRequest, settings: PlatformSettings) -> None:
    """With IMAGE_URL_CHECK, 400 invalid_image_url listing every refused image URL of `request`."""
    if not settings.image_url_check:
        return
    problems = image_url_problems(request, settings)
    if not problems:
        return
    listed = problems[:_MAX_PROBLEMS]
    message = "Invalid image URL: " + "; ".join(f"`{param}` {text}" for param, text in listed)
    if len(problems) > _MAX_PROBLEMS:
        message += f"; and more (the first {_MAX_PROBLEMS} are listed)"
    raise ServiceError(400, "invalid_image_url", message, param=listed[0][0])
