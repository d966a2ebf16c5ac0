"""Who may call: API keys (API_KEYS, METRICS_API_KEYS), the Host header (ALLOWED_HOSTS), and the service's
own say per request (`ServiceSpec.authorize`).

Keys are kept as SHA-256 digests only: a plain key in API_KEYS is hashed at start-up, and an entry
`sha256:<hex>` lets the environment hold no key at all. A presented key is hashed and compared with every
digest by `hmac.compare_digest`, so the time taken says nothing about how much of a key matched. A caller
is named in the access line by the first 8 hex digits of its key's digest (`key_fingerprint`), never by
the key.
"""

import hashlib
import hmac
import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass

from nexus_platform._config.settings import PlatformSettings

__all__ = [
    "MAKE_A_KEY",
    "MIN_KEY_LENGTH",
    "Access",
    "ApiKeys",
    "Authorize",
    "Caller",
    "Hosts",
    "is_loopback",
    "presented_key",
]

# LiteLLM's proxy refuses short and published master keys; 32 characters of token_urlsafe are 192 bits
MIN_KEY_LENGTH = 32
MAKE_A_KEY = "python -c 'import secrets; print(secrets.token_urlsafe(32))'"
# keys that appear in public examples; a service started with one of them is open to anyone who read them
_PUBLISHED = frozenset({"sk-1234", "sk-12345678901234567890123456789012", "changeme", "secret"})
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_KEY = re.compile(r"[\x21-\x7e]+")  # printable ASCII, no spaces: what fits an Authorization header
_BEARER = b"bearer "


def _digest(key: bytes) -> bytes:
    return hashlib.sha256(key).digest()


class ApiKeys:
    """The accepted keys of one setting; falsy when the setting is empty (no authentication)."""

    def __init__(self, variable: str, entries: str) -> None:
        """Raise ValueError, naming `variable` and the entry's position (never its text), for a bad entry."""
        digests = []
        for position, entry in enumerate((part.strip() for part in entries.split(",") if part.strip()), 1):
            if entry.startswith("sha256:"):
                if not _DIGEST.fullmatch(entry):
                    raise ValueError(
                        f"{variable}: entry {position} is not sha256: and 64 lowercase hex digits"
                    )
                digests.append(bytes.fromhex(entry.removeprefix("sha256:")))
                continue
            if not _KEY.fullmatch(entry):
                raise ValueError(f"{variable}: entry {position} holds a character other than printable ASCII")
            if len(entry) < MIN_KEY_LENGTH or entry in _PUBLISHED:
                raise ValueError(
                    f"{variable}: entry {position} is shorter than {MIN_KEY_LENGTH} characters or a published "
                    f"example; make a key with {MAKE_A_KEY}"
                )
            digests.append(_digest(entry.encode()))
        self._digests = tuple(digests)

    def __bool__(self) -> bool:
        return bool(self._digests)

    def fingerprint(self, presented: bytes | None) -> str | None:
        """The fingerprint of `presented` when it is one of the keys, else None (in constant time for a
        given number of keys)."""
        if presented is None:
            return None
        digest = _digest(presented)
        matched = False
        for known in self._digests:  # no early exit: every digest is compared
            matched |= hmac.compare_digest(digest, known)
        return digest[:4].hex() if matched else None


def presented_key(authorization: bytes | None, api_key: bytes | None) -> bytes | None:
    """The key a request presents: `Authorization: Bearer <key>` (what the OpenAI SDK sends), else
    `x-api-key: <key>` (Anthropic's SDK and many tools)."""
    if authorization is not None and authorization[:7].lower() == _BEARER:
        return authorization[7:].strip() or None
    return api_key or None


class Hosts:
    """ALLOWED_HOSTS: `*`, names, and `.domain` for a domain and its subdomains, compared without the port."""

    def __init__(self, allowed: str) -> None:
        """Raise ValueError for an entry that could never match a Host header's name."""
        entries = {entry.strip().lower().rstrip(".") for entry in allowed.split(",") if entry.strip()}
        for entry in entries:
            if ":" in entry and not (entry.startswith("[") and entry.endswith("]")):
                raise ValueError(
                    f"ALLOWED_HOSTS: {entry} has a port or is an IPv6 address without brackets; give the "
                    "name alone (ports are not compared) and IPv6 addresses as [::1]"
                )
        self.any = "*" in entries
        self._names = frozenset(entry for entry in entries if not entry.startswith("."))
        self._domains = tuple(entry for entry in entries if entry.startswith("."))

    def allows(self, host: bytes) -> bool:
        if self.any:
            return True
        name = host.decode("latin-1").lower()
        if name.startswith("["):  # [::1]:9000
            end = name.find("]") + 1
            if name[end:] and not name[end:].startswith(":"):
                return False  # [::1]anything
            name = name[:end]
        elif ":" in name:  # host:port
            name = name.rpartition(":")[0]
        name = name.rstrip(".")  # example.com. is example.com
        return name in self._names or any(
            name.endswith(domain) or name == domain[1:] for domain in self._domains
        )


def is_loopback(host: str) -> bool:
    """Whether SERVICE_HOST keeps the service on this machine (127.0.0.0/8, ::1, localhost)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class Caller:
    """What `ServiceSpec.authorize` sees of a request, before any of its body is read.

    key          the fingerprint of the valid key it sent (None: no valid key, or API_KEYS is empty)
    method       the request's (HEAD is seen as GET; WEBSOCKET for a WebSocket handshake)
    path         as the router matches it: doubled and trailing slashes removed (//v1/x/ is /v1/x)
    client       the client's address ("" when the server does not know it)
    """

    key: str | None
    method: str
    path: str
    client: str


# True: allow (even without a key), False: refuse with 403, None: the platform decides (a key when API_KEYS
# is set)
Authorize = Callable[[Caller], bool | None]


class Access:
    """The access rules of one app, from its settings and the service's `authorize`; raises ValueError
    (one line naming the variable) for invalid keys, and for a service that would listen beyond this
    machine with no keys unless ALLOW_UNAUTHENTICATED=true says that is meant."""

    def __init__(self, settings: PlatformSettings, authorize: Authorize | None = None) -> None:
        self.keys = ApiKeys("API_KEYS", settings.api_keys)
        # /metrics takes its own keys when set (a scraper's key is not a client's), else the clients'
        self.metrics_keys = ApiKeys("METRICS_API_KEYS", settings.metrics_api_keys) or self.keys
        self.hosts = Hosts(settings.allowed_hosts)
        self.authorize = authorize
        self.unauthenticated = not self.keys and not is_loopback(settings.service_host)
        if self.unauthenticated and not settings.allow_unauthenticated:
            raise ValueError(
                f"API_KEYS: required when SERVICE_HOST={settings.service_host} (beyond this machine): make a "
                f"key with {MAKE_A_KEY}, or set ALLOW_UNAUTHENTICATED=true if something in front authenticates"
            )
