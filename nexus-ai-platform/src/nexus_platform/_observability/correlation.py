"""Request ids: a valid incoming X-Request-ID is kept, anything else is replaced by a fresh id."""

import os
import re
from contextvars import ContextVar

HEADER = b"x-request-id"
# Letters, digits and . _ : - only, at most 128 characters: safe to echo into headers and logs.
_VALID = re.compile(rb"[A-Za-z0-9._:\-]{1,128}")

request_id_var: ContextVar[str] = ContextVar("request_id", default="")


def current_request_id() -> str:
    """The id of the request being handled ('' outside a request)."""
    return request_id_var.get()


def request_id_of(incoming: bytes | None) -> tuple[str, bool]:
    """(the request id, whether it is fresh): the incoming one when valid, else 128 random bits in hex."""
    if incoming is not None and _VALID.fullmatch(incoming):
        return incoming.decode("ascii"), False
    return os.urandom(16).hex(), True  # secrets.token_hex(16), without its overhead
