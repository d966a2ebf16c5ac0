"""The package index, asked by pip (the resolution check) and uv (the lock refresh): bounded waits, and
an outage told apart from an answer.

An index that refuses connections, cannot be found (DNS) or accepts them and never answers is an
outage: it is reported as "package index unreachable", never as a requirements clash, and never cached
(the next run asks again). Each request waits at most `$NEXUS_TEMPLATE_INDEX_TIMEOUT` seconds (default
10) and is tried twice, so an outage costs a service about twice that instead of minutes.
"""

from __future__ import annotations

import os

__all__ = [
    "TIMEOUT_SETTING",
    "IndexUnreachable",
    "index_settings",
    "pip_options",
    "pip_outage",
    "uv_environment",
    "uv_outage",
]

TIMEOUT_SETTING = "NEXUS_TEMPLATE_INDEX_TIMEOUT"
_DEFAULT_TIMEOUT_S = 10
# One retry: a single dropped connection is not an outage. It also makes every outage visible to pip's
# --quiet: pip warns about each failed try but the last (which it logs only with --verbose).
_RETRIES = "1"
_PIP_OUTAGE = "after connection broken by "
_UV_OUTAGE = "Failed to fetch"


# The environment that chooses which index pip and uv ask: a resolution cached for one index is no answer
# for another (a private mirror, a login that expired and answers 403). A refreshed lock is cached across
# indexes: it holds the pins and hashes of real files, whichever index served them.
_INDEX_VARIABLES = (
    "PIP_INDEX_URL",
    "PIP_EXTRA_INDEX_URL",
    "PIP_FIND_LINKS",
    "PIP_NO_INDEX",
    "PIP_CONFIG_FILE",
    "UV_INDEX_URL",
    "UV_DEFAULT_INDEX",
    "UV_INDEX",
    "UV_EXTRA_INDEX_URL",
    "UV_FIND_LINKS",
    "UV_NO_INDEX",
)


def index_settings() -> str:
    """The index settings in force (for cache keys)."""
    return "\n".join(f"{name}={os.environ.get(name, '')}" for name in _INDEX_VARIABLES)


class IndexUnreachable(Exception):
    """The package index did not answer; the message names the tool and its reason."""


def _timeout_s() -> str:
    """Whole seconds: uv reads no fractions."""
    setting = os.environ.get(TIMEOUT_SETTING, "")
    if not setting:
        return str(_DEFAULT_TIMEOUT_S)
    if not setting.isdigit() or int(setting) == 0:
        raise ValueError(f"{TIMEOUT_SETTING} must be a whole number of seconds above 0, not {setting!r}")
    return setting


def pip_options() -> list[str]:
    """pip's command-line options for bounded waits (they override pip's configuration and PIP_* variables)."""
    return ["--timeout", _timeout_s(), "--retries", _RETRIES]


def uv_environment() -> dict[str, str]:
    """The environment variables that bound uv's waits (uv has no configuration file option for them)."""
    return {"UV_HTTP_TIMEOUT": _timeout_s(), "UV_HTTP_RETRIES": _RETRIES}


def pip_outage(stderr: str) -> str | None:
    """Why pip could not reach the index ("package index unreachable (pip: ...)"), or None when it could.

    pip reports an unreachable index as a requirement with no versions ("from versions: none") after
    warning "Retrying (...) after connection broken by 'NewConnectionError(...Connection refused)'"."""
    for line in stderr.splitlines():
        if _PIP_OUTAGE in line:
            return f"package index unreachable (pip: {line.partition(_PIP_OUTAGE)[2].strip()})"
    return None


def uv_outage(stderr: str) -> str | None:
    """Why uv could not reach the index ("package index unreachable (uv: ...)"), or None when it could.

    uv says "Failed to fetch: URL" followed by its causes, the last one the root ("Connection refused",
    "operation timed out", "dns error: ...")."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    fetch = next((line for line in lines if _UV_OUTAGE in line), None)
    if fetch is None:
        return None
    cause = lines[-1].removeprefix("cause:").removeprefix("Caused by:").strip()
    url = fetch.partition(_UV_OUTAGE)[2].strip(" :`")
    return f"package index unreachable (uv: {url}: {cause})"
