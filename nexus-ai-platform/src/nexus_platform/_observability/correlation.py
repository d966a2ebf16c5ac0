"""Request ids: a valid incoming X-Request-ID is kept, anything else is replaced by a fresh id."""

import os
import re
from collections.abc import Iterable
from contextvars import ContextVar

HEADER = b"x-request-id"
# Letters, digits and . _ : - only, at most 128 characters: safe to echo into headers and logs.
_VALID = re.compile(rb"[A-Za-z0-9._:\-]{1,128}")

request_id_var: ContextVar[str] = ContextVar("request_id", default="")


def current_request_id() -> str:
    """The id of the request being handled ('' outside a request)."""
    return request_id_var.get()


def read_headers(headers: Iterable[tuple[bytes, bytes]]) -> tuple[str, int, bytes | None, bool]:
    """(request id, total header bytes, raw `traceparent` or None, whether the id is fresh) in one pass.

    The request id is the incoming one when valid, else a fresh one (128 random bits in hex).
    """
    size = 0
    incoming = traceparent = None
    for name, value in headers:
        size += len(name) + len(value)
        if name == HEADER:
            incoming = value
        elif name == b"traceparent":
            traceparent = value
    if incoming is not None and _VALID.fullmatch(incoming):
        return incoming.decode("ascii"), size, traceparent, False
    return os.urandom(16).hex(), size, traceparent, True  # secrets.token_hex(16), without its overhead
