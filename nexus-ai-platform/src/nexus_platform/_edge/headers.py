"""The request headers the outer ASGI layer acts on, read in one pass over the list."""

from collections.abc import Iterable
from typing import NamedTuple

from nexus_platform._observability.correlation import HEADER, request_id_of

__all__ = ["RequestHeaders", "read_headers"]


class RequestHeaders(NamedTuple):
    request_id: str
    fresh_id: bool  # the service made the id (the client sent none, or an invalid one)
    size: int  # bytes of all names and values, for MAX_HEADER_BYTES
    traceparent: bytes | None
    authorization: bytes | None
    api_key: bytes | None  # x-api-key
    host: bytes | None
    hosts: int  # how many Host headers: anything but one is refused


def read_headers(headers: Iterable[tuple[bytes, bytes]]) -> RequestHeaders:
    size = hosts = 0
    incoming = traceparent = authorization = api_key = host = None
    for name, value in headers:  # servers give names in lowercase (ASGI)
        size += len(name) + len(value)
        if name == b"host":
            host = value
            hosts += 1
        elif name == HEADER:
            incoming = value
        elif name == b"traceparent":
            traceparent = value
        elif name == b"authorization":
            authorization = value
        elif name == b"x-api-key":
            api_key = value
    request_id, fresh = request_id_of(incoming)
    return RequestHeaders(request_id, fresh, size, traceparent, authorization, api_key, host, hosts)
