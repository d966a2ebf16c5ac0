"""What the outer ASGI layer records per request: the trace context when it starts; the access line and
the request metrics when it ends. METRICS_ENABLED=false and TRACING_ENABLED=false take each out of the
request path entirely (the benchmark compares both ways). Also the platform's own metrics collector."""

import time
from collections.abc import Mapping
from contextvars import Token
from typing import Any, Protocol, get_args, get_type_hints

from litestar.types import Scope

from nexus_platform._context import NexusContext
from nexus_platform._observability.generation import Generation, LlmMetrics
from nexus_platform._observability.logs import AccessLog, LogQueue
from nexus_platform._observability.metrics import Collector, Family, HttpMetrics, Labels
from nexus_platform._observability.tracing import (
    NEW_TRACE_FLAGS,
    TRACEPARENT,
    new_trace,
    outgoing_traceparent,
    parse_traceparent,
    start_trace,
    trace_var,
)
from nexus_platform._probes.metadata import RegistrationInfo

__all__ = ["Observer", "Served", "platform_collector"]


class Observer:
    """`trace_header`: when this service started the trace, the app sees it as the request's `traceparent`
    (a tracing middleware from ServiceSpec.middleware then records spans under the trace the logs show)."""

    __slots__ = ("access_log", "llm", "metrics", "trace_header", "tracing")

    def __init__(
        self,
        access_log: AccessLog,
        metrics: HttpMetrics | None,
        *,
        tracing: bool,
        trace_header: bool = False,
        llm: LlmMetrics | None = None,
    ) -> None:
        self.access_log = access_log
        self.metrics = metrics
        self.llm = llm
        self.tracing = tracing
        self.trace_header = tracing and trace_header

    def start_trace(
        self, scope: Scope, traceparent: bytes | None, fresh_id: str | None
    ) -> Token[tuple[str, str] | None] | None:
        """Continue the incoming trace or start one, for the log lines and outgoing calls of the request.

        `fresh_id`: the request id when this service generated it (random 128 bits: it becomes the id of
        a trace this service starts, so that the two are one value when the client sent neither)."""
        if not self.tracing:
            return None
        if not self.trace_header:
            if traceparent is None and fresh_id is not None:
                return trace_var.set((fresh_id, NEW_TRACE_FLAGS))
            return trace_var.set(start_trace(traceparent, fresh_id))
        trace = parse_traceparent(traceparent) if traceparent is not None else None
        if trace is None:
            trace = new_trace(fresh_id)
            headers = [header for header in scope["headers"] if header[0] != TRACEPARENT]
            scope["headers"] = [*headers, (TRACEPARENT, outgoing_traceparent(trace).encode())]
        return trace_var.set(trace)

    def finish(
        self,
        method: str,
        path: str,
        route: str,
        status: int,
        started: float,
        request_id: str,
        trace: Token[tuple[str, str] | None] | None,
        received: int,
        sent: int,
        outcome: str | None,
        key: str | None = None,
        generation: Generation | None = None,
    ) -> None:
        """Record the request that arrived at `started` (time.monotonic()) and is done: `received` and
        `sent` body bytes, `outcome` when the platform or the client ended it early
        (nexus_platform._http.exchange.Outcome), the fingerprint of the caller's key, and what it
        generated when it asked a model."""
        seconds = time.monotonic() - started
        if self.metrics is not None:
            self.metrics.observe(route, method, status, seconds, received, sent)
        if generation is not None and self.llm is not None:
            self.llm.finish(generation, status, outcome)
        if self.access_log.enabled:
            current = trace_var.get() if trace is not None else None  # set by start_trace for this request
            self.access_log.write(
                method,
                path,
                status,
                seconds,
                request_id,
                current[0] if current is not None else "",
                bytes_sent=sent,
                outcome=outcome,
                key=key,
                generation=generation,
            )
        if trace is not None:
            trace_var.reset(trace)


# the states the metadata document declares (one series each)
REGISTRATION_STATES = get_args(get_type_hints(RegistrationInfo)["state"])


class Served(Protocol):
    """What the platform collector reads of the outer ASGI layer (nexus_platform._edge.asgi.NexusASGI)."""

    context: NexusContext
    in_flight: int
    rejected: int
    timeouts: int


def platform_collector(
    app: Served, lines: LogQueue, registration: Any = None, build: Mapping[str, str] | None = None
) -> Collector:
    """Limits, draining, registration, build and logging metrics, read from the objects at scrape time."""
    build_labels: Labels = tuple(sorted((build or {}).items()))

    def collect() -> list[Family]:
        families = [
            Family(
                "nexus_http_requests_in_flight",
                "gauge",
                "Requests running now under MAX_CONCURRENT_REQUESTS (probes and /metrics never count).",
                [("", (), app.in_flight)],
            ),
            Family(
                "nexus_http_requests_rejected",
                "counter",
                "Requests answered 503 at once because MAX_CONCURRENT_REQUESTS were running.",
                [("_total", (), app.rejected)],
            ),
            Family(
                "nexus_http_request_timeouts",
                "counter",
                "Requests the platform ended for a time limit: REQUEST_TIMEOUT_SECONDS, or a stream's idle or "
                "total time.",
                [("_total", (), app.timeouts)],
            ),
            Family(
                "nexus_draining",
                "gauge",
                "1 after SIGTERM while the service drains (readiness fails), else 0.",
                [("", (), int(app.context.draining))],
            ),
            Family(
                "nexus_log_lines_dropped",
                "counter",
                "Log lines dropped because stdout was not read and the buffer (LOG_BUFFER_BYTES) was full.",
                [("_total", (), lines.dropped)],
            ),
            Family(
                "nexus_build",
                "info",
                "Service version, template version and git commit of this build.",
                [("_info", build_labels, 1)],
            ),
        ]
        if registration is not None:
            state = registration.state
            samples = [("", (("state", each),), int(each == state)) for each in REGISTRATION_STATES]
            families.append(
                Family(
                    "nexus_registration_state",
                    "gauge",
                    "Self-registration in etcd (1 for the current state).",
                    samples,
                )
            )
        return families

    return collect  # fmt: skip
