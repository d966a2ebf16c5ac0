# Managed by nexus-template: `copier update` replaces this file. Your code belongs in app/service.py.
"""Request ids: a valid incoming X-Request-ID is kept, anything else is replaced by a fresh id."""

import re
import secrets
from contextvars import ContextVar

HEADER = b"x-request-id"
# Letters, digits and . _ : - only, at most 128 characters: safe to echo into headers and logs.
_VALID = re.compile(rb"[A-Za-z0-9._:\-]{1,128}")

request_id_var: ContextVar[str] = ContextVar("request_id", default="")


def current_request_id() -> str:
    """The id of the request being handled ('' outside a request)."""
    return request_id_var.get()


def request_id_from_headers(headers: list[tuple[bytes, bytes]]) -> str:
    for name, value in headers:
        if name == HEADER:
            if _VALID.fullmatch(value):
                return value.decode("ascii")
            break
    return secrets.token_hex(16)
