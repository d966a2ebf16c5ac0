"""W3C trace context (https://www.w3.org/TR/trace-context/): a valid incoming `traceparent` is continued,
otherwise a new trace is started. The trace id is on every log line of the request, and calls through the
pooled HTTP client carry `traceparent` (a new parent id under the same trace) and `x-request-id`.

Nothing is recorded or exported here: a service that exports spans adds a tracing middleware through
`ServiceSpec.middleware` (docs/operations.md, "Tracing"); it sees the same trace as the logs.
"""

import re
from contextvars import ContextVar
from random import getrandbits, randbytes
from typing import TYPE_CHECKING

from nexus_platform._observability.correlation import HEADER, current_request_id

if TYPE_CHECKING:
    import httpx

__all__ = [
    "NEW_TRACE_FLAGS",
    "TRACEPARENT",
    "current_trace_id",
    "forward_context",
    "outgoing_traceparent",
    "start_trace",
    "trace_var",
]

TRACEPARENT = b"traceparent"
# version 00 is exactly four fields; a later version may append fields (the spec's forward compatibility)
_VALID = re.compile(rb"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")
_ZERO_TRACE, _ZERO_PARENT = "0" * 32, "0" * 16
# a trace this service starts is marked sampled: downstream services with parent-based samplers keep it
NEW_TRACE_FLAGS = "01"

# (trace id, trace flags) of the request being handled
trace_var: ContextVar[tuple[str, str] | None] = ContextVar("trace", default=None)


def parse_traceparent(value: bytes) -> tuple[str, str] | None:
    """(trace id, flags) of a valid `traceparent` header value, else None."""
    match = _VALID.fullmatch(value)
    if match is None:
        return None
    version, trace_id, parent_id, flags, rest = (
        group.decode("ascii") if group else "" for group in match.groups()
    )
    if version == "ff" or (version == "00" and rest) or trace_id == _ZERO_TRACE or parent_id == _ZERO_PARENT:
        return None
    return trace_id, flags


def new_trace(fresh_id: str | None = None) -> tuple[str, str]:
    """(trace id, flags) of a trace this service starts. `fresh_id`: 128 random bits in hex this service
    just made (a request id it generated), used as the trace id rather than drawing another."""
    if fresh_id is None:
        fresh_id = randbytes(16).hex()  # noqa: S311 - trace ids must be unique, not secret
        if fresh_id == _ZERO_TRACE:  # invalid as a trace id (one chance in 2**128)
            fresh_id = _ZERO_TRACE[:-1] + "1"
    return fresh_id, NEW_TRACE_FLAGS


def start_trace(traceparent: bytes | None, fresh_id: str | None = None) -> tuple[str, str]:
    """(trace id, flags): the incoming trace when `traceparent` is valid, else a new one."""
    if traceparent is not None:
        incoming = parse_traceparent(traceparent)
        if incoming is not None:
            return incoming
    return new_trace(fresh_id)


def current_trace_id() -> str:
    """The trace id of the request being handled ('' outside a request or with TRACING_ENABLED=false)."""
    trace = trace_var.get()
    return trace[0] if trace is not None else ""


def outgoing_traceparent(trace: tuple[str, str]) -> str:
    """A `traceparent` for a call made while handling a request: same trace, a new parent (span) id."""
    return f"00-{trace[0]}-{getrandbits(64) or 1:016x}-{trace[1]}"


async def forward_context(request: "httpx.Request") -> None:
    """httpx request hook of the pooled client: the request id and trace context travel with each call
    (headers the caller set itself are kept)."""
    request_id = current_request_id()
    if request_id and HEADER.decode() not in request.headers:
        request.headers[HEADER.decode()] = request_id
    trace = trace_var.get()
    if trace is not None and "traceparent" not in request.headers:
        request.headers["traceparent"] = outgoing_traceparent(trace)
