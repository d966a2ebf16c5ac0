"""The etcd role a service needs, and `python -m nexus_platform etcd-init`, which creates it.

`service_ranges` is the role: the key ranges the service writes, from the same names the registrar writes
(its service key, its instance keys and, with Traefik routing, its routers and middlewares, named
`<service>_<instance>`, and its Traefik service), so the role and the registration cannot drift apart.

`etcd_init` is what compose's one-shot `etcd-init` runs against the `registry` profile's etcd: as root
(ETCD_ROOT_PASSWORD) it creates root, a role named after ETCD_USERNAME with read-write on exactly those
ranges (any other permission of that role is revoked), the user with ETCD_PASSWORD, and turns auth on.
It converges: run again with other settings, the role and password follow them. No password is printed.
"""

import base64
import os
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from nexus_platform._config.settings import ConfigError, PlatformSettings, load_settings
from nexus_platform._registration.config import etcd_tls_context
from nexus_platform._registration.etcd import prefix_range
from nexus_platform._registration.registrar import router_name

__all__ = ["etcd_init", "service_ranges"]

# etcd may still be starting when compose starts etcd-init
_STARTUP_SECONDS = 60


def service_ranges(service: str, key_prefix: str, traefik_root: str) -> list[tuple[str, str]]:
    """(key, range_end) of each range the service's role may read and write ("" range_end: one key)."""
    service_key = key_prefix + service
    ranges = [(service_key, ""), prefix_range(service_key + "/")]
    if traefik_root:
        routers = router_name(service, "")  # <service>_: no other service's names start so
        ranges += [
            prefix_range(f"{traefik_root}/http/routers/{routers}"),
            prefix_range(f"{traefik_root}/http/middlewares/{routers}"),
            prefix_range(f"{traefik_root}/http/services/{service}/"),
        ]
    return ranges


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


class _Init:
    def __init__(self, client: httpx.Client, url: str) -> None:
        self.client, self.url, self.token = client, url, ""

    def call(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        headers = {"authorization": self.token} if self.token else {}
        answer: dict[str, Any] = self.client.post(f"{self.url}/v3/{path}", json=body, headers=headers).json()
        return answer

    def must(self, path: str, body: dict[str, Any], tolerated: str = "") -> None:
        error = str(self.call(path, body).get("error", ""))
        if error and not (tolerated and tolerated in error):
            raise ConfigError(f"{path}: {error}")

    def log_in_as_root(self, password: str) -> None:
        answer = self._authenticate("root", password)
        self.token = str(answer.get("token", ""))
        if not self.token and "not enabled" not in str(answer.get("error", "")):
            raise ConfigError(f"root cannot log in (ETCD_ROOT_PASSWORD changed?): {answer.get('error')}")

    def _authenticate(self, user: str, password: str) -> dict[str, Any]:
        deadline = time.monotonic() + _STARTUP_SECONDS
        while True:
            try:
                return self.call("auth/authenticate", {"name": user, "password": password})
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise ConfigError(f"no answer from {self.url} in {_STARTUP_SECONDS} s") from None
                time.sleep(1)

    def grant_exactly(
        self,
        role: str,
        ranges: Sequence[tuple[str, str]],
        read_ranges: Sequence[tuple[str, str]] = (),
    ) -> None:
        """`role` holds READWRITE on `ranges`, READ on `read_ranges`, and nothing else."""
        wanted = {(_b64(key), _b64(end), "READWRITE") for key, end in ranges}
        wanted |= {(_b64(key), _b64(end), "READ") for key, end in read_ranges}
        for permission in self.call("auth/role/get", {"role": role}).get("perm", []):
            # etcd omits a zero enum: READ is permType 0
            held = (permission["key"], permission.get("range_end", ""), permission.get("permType", "READ"))
            if held in wanted:
                wanted.discard(held)
            else:
                self.must("auth/role/revoke", {"role": role, "key": held[0], "range_end": held[1]})
        for key, end, kind in sorted(wanted):
            permission = {"permType": kind, "key": key, "range_end": end}
            self.must("auth/role/grant", {"name": role, "perm": permission})


def etcd_init(service: str, environ: Mapping[str, str] | None = None, *, gateway: bool = False) -> int:
    """Set up the registry etcd for `service` (SERVICE_NAME in the environment wins, as for the service);
    a `gateway` also reads every registration (ETCD_KEY_PREFIX), to route by them. 0 on success, 1 with one
    line on stderr otherwise."""
    environ = os.environ if environ is None else environ
    missing = [
        name for name in ("ETCD_ROOT_PASSWORD", "ETCD_USERNAME", "ETCD_PASSWORD") if not environ.get(name)
    ]
    if missing:
        print(
            f"etcd-init: set {', '.join(missing)} in .env: the registry profile's etcd needs them",
            file=sys.stderr,
        )
        return 1
    try:
        settings = load_settings(PlatformSettings, environ, {"service_name": service})
        user = settings.etcd_username
        if user == "root":
            raise ConfigError("ETCD_USERNAME must not be root: the service gets a role of its own")
        url = settings.etcd_url.split(",")[0].strip().rstrip("/")
        ranges = service_ranges(settings.service_name, settings.etcd_key_prefix, settings.etcd_traefik_root)
        with httpx.Client(timeout=5, verify=etcd_tls_context(settings) or True) as client:
            init = _Init(client, url)
            init.log_in_as_root(environ["ETCD_ROOT_PASSWORD"])
            init.must(
                "auth/user/add", {"name": "root", "password": environ["ETCD_ROOT_PASSWORD"]}, "already exists"
            )
            init.must("auth/role/add", {"name": "root"}, "already exists")
            init.must("auth/user/grant", {"user": "root", "role": "root"})
            init.must("auth/role/add", {"name": user}, "already exists")
            prefix = settings.etcd_key_prefix
            reads = [(prefix, prefix[:-1] + chr(ord(prefix[-1]) + 1))] if gateway else []
            init.grant_exactly(user, ranges, reads)
            init.must("auth/user/add", {"name": user, "password": settings.etcd_password}, "already exists")
            init.must("auth/user/changepw", {"name": user, "password": settings.etcd_password})
            init.must("auth/user/grant", {"user": user, "role": user})
            init.must("auth/enable", {})
    except (ConfigError, httpx.HTTPError) as error:
        print(f"etcd-init: {error}", file=sys.stderr)
        return 1
    print(
        f"etcd-init: auth on; {user} reads and writes {len(ranges)} key ranges of {settings.service_name} only"
        + (f", and reads the registrations under {settings.etcd_key_prefix}" if gateway else "")
    )
    return 0
