"""Secrets out of logs and error messages: credentials in URLs, secret query parameters, bearer tokens,
OpenAI-style keys (`sk-...`) and the values of secret settings.

`redact_url` cleans one URL (settings at start-up); `Redactor` cleans whole log lines, so that a secret
that reaches a message, an `extra` field or a stack trace is still hidden. Access lines never pass
through it: they hold only the method, the path (no query string), the status and ids.
"""

import json
import re
from collections.abc import Iterable

__all__ = ["MASK", "Redactor", "redact_url"]

MASK = "***"
# user:password@ in any scheme://authority; the user name stays (it helps debugging), the password goes
_USERINFO = re.compile(
    r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<user>[^\s/?#@:\"']*):(?P<password>[^\s/?#@\"']*)@"
)
# query parameters whose values are credentials by name (token, api_key, password, sig, ...)
_SECRET_PARAMETER = re.compile(
    r"(?P<key>[?&;](?:[\w.\-]*(?:token|secret|password|passwd|pwd|api[_\-]?key|apikey|access[_\-]?key|"
    r"auth|credential|signature|sig|session)[\w.\-]*)=)(?P<value>[^&;#\s\"']*)",
    re.IGNORECASE,
)
# a token after "Bearer" (a backend echoing the Authorization header it refused), and OpenAI-style keys
_BEARER = re.compile(r"(?P<scheme>\b[Bb]earer\s+)[A-Za-z0-9._~+/=\-]{8,}")
_KEY = re.compile(r"\b(?P<prefix>sk-)[A-Za-z0-9_\-]{16,}")
# shorter secret values would mask ordinary words in every line
_MIN_SECRET_LENGTH = 4


def redact_url(text: str) -> str:
    """`text` with URL passwords and secret query parameter values replaced by ***."""
    if "://" not in text and "=" not in text:
        return text
    text = _USERINFO.sub(rf"\g<scheme>\g<user>:{MASK}@", text)
    return _SECRET_PARAMETER.sub(rf"\g<key>{MASK}", text)


class Redactor:
    """Replaces URL credentials and the known secret values in a formatted log line."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: list[str] = []
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        """Hide these values from now on (the values of secret settings, read at start-up)."""
        known = set(self._secrets)
        for value in secrets:
            if len(value) < _MIN_SECRET_LENGTH:
                continue
            # as written in a JSON line too (a quote or backslash in the value is escaped there)
            for form in (value, json.dumps(value, ensure_ascii=False)[1:-1]):
                if form not in known:
                    known.add(form)
                    self._secrets.append(form)
        # longest first, so that a secret containing another is hidden whole
        self._secrets.sort(key=len, reverse=True)

    def __call__(self, line: str) -> str:
        for secret in self._secrets:
            if secret in line:
                line = line.replace(secret, MASK)
        if "earer" in line:
            line = _BEARER.sub(rf"\g<scheme>{MASK}", line)
        if "sk-" in line:
            line = _KEY.sub(rf"\g<prefix>{MASK}", line)
        return redact_url(line)
