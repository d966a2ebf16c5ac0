"""Prometheus metrics on GET /metrics: the text format 0.0.4, or OpenMetrics 1.0 when `Accept` asks for it.

Per request the cost is one dict lookup and a few additions on the event loop (HttpMetrics.observe); all
formatting happens when Prometheus scrapes. Labels are bounded: route templates (`/v1/items/{id:str}`),
never raw paths ("(unrouted)" for requests that matched no route: 404s, 405s, 431s and rejections), seven
methods and "OTHER", status classes ("2xx"). Everything else comes from collectors: functions returning
`Family` objects, read at scrape time (readiness, draining, registration, build, logs, GPUs, process).
"""

import functools
import math
import os
import resource
import time
from bisect import bisect_left
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal, NamedTuple

__all__ = [
    "BUCKETS",
    "OPENMETRICS",
    "TEXT",
    "UNROUTED",
    "Collector",
    "Family",
    "HttpMetrics",
    "Metrics",
    "histogram_samples",
    "process_families",
]

TEXT = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"
UNROUTED = "(unrouted)"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# seconds: probes take well under a millisecond, generation can take minutes (REQUEST_TIMEOUT_SECONDS)
BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
    300.0,
)

_FIRST_BUCKET = 4
Kind = Literal["counter", "gauge", "histogram", "info"]
Labels = tuple[tuple[str, str], ...]


class Family(NamedTuple):
    """One metric family. Sample names are the family name plus a suffix: "_total" for counters,
    "_bucket"/"_count"/"_sum" for histograms, "_info" for info, "" for gauges."""

    name: str
    kind: Kind
    help: str
    samples: Sequence[tuple[str, Labels, float]]


Collector = Callable[[], Iterable[Family]]


class HttpMetrics:
    """Counts, durations and bytes per (route template, method, status class), updated per request."""

    __slots__ = ("series",)

    def __init__(self) -> None:
        # (route, method, status // 100) -> [count, seconds, bytes received, bytes sent, *bucket counts]
        # (one flat list: the fewest operations per request)
        self.series: dict[tuple[str, str, int], list[float]] = {}

    def observe(self, route: str, method: str, status: int, seconds: float, received: int, sent: int) -> None:
        key = (route, method if method in _METHODS else "OTHER", status // 100)
        entry = self.series.get(key)
        if entry is None:
            entry = self.series[key] = [0, 0.0, 0, 0] + [0] * (len(BUCKETS) + 1)
        entry[0] += 1
        entry[1] += seconds
        entry[2] += received
        entry[3] += sent
        entry[_FIRST_BUCKET + bisect_left(BUCKETS, seconds)] += 1

    def families(self) -> list[Family]:
        requests = []
        routes: dict[str, list[Any]] = {}  # route -> [count, seconds, received, sent, buckets]
        for (route, method, status_class), entry in self.series.items():
            count, seconds, received, sent, buckets = *entry[:_FIRST_BUCKET], entry[_FIRST_BUCKET:]
            requests.append(
                ("_total", (("route", route), ("method", method), ("status", f"{status_class}xx")), count)
            )
            total = routes.setdefault(route, [0, 0.0, 0, 0, [0] * (len(BUCKETS) + 1)])
            total[0] += count
            total[1] += seconds
            total[2] += received
            total[3] += sent
            total[4] = [a + b for a, b in zip(total[4], buckets, strict=True)]
        durations: list[tuple[str, Labels, float]] = []
        for route, (_, seconds, _, _, buckets) in routes.items():
            durations += histogram_samples((("route", route),), BUCKETS, buckets, seconds)
        return [
            Family("nexus_http_requests", "counter", "HTTP requests by route template, method and status class.", requests),
            Family("nexus_http_request_duration_seconds", "histogram", "HTTP request duration by route template.", durations),
            Family(
                "nexus_http_request_bytes",
                "counter",
                "Request body bytes received, by route template.",
                [("_total", (("route", route),), total[2]) for route, total in routes.items()],
            ),
            Family(
                "nexus_http_response_bytes",
                "counter",
                "Response body bytes sent, by route template.",
                [("_total", (("route", route),), total[3]) for route, total in routes.items()],
            ),
        ]  # fmt: skip


def histogram_samples(
    labels: Labels, bounds: Sequence[float], counts: Sequence[int], total: float
) -> list[tuple[str, Labels, float]]:
    """A histogram's samples from its per-bucket counts (the last one: above every bound)."""
    samples: list[tuple[str, Labels, float]] = []
    cumulative = 0
    for bound, in_bucket in zip((*bounds, float("inf")), counts, strict=True):
        cumulative += in_bucket
        samples.append(("_bucket", (*labels, ("le", _number(float(bound)))), cumulative))
    return [*samples, ("_count", labels, cumulative), ("_sum", labels, total)]


def process_families() -> list[Family]:
    """The usual process_* metrics (Linux), as Prometheus client libraries export them."""
    times = os.times()
    try:
        with open("/proc/self/statm", "rb") as statm:
            rss_bytes = int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, IndexError, ValueError):  # not Linux: the peak instead
        rss_bytes = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return [
        Family("process_cpu_seconds", "counter", "User and system CPU time spent in seconds.", [("_total", (), times.user + times.system)]),
        Family("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.", [("", (), rss_bytes)]),
        Family("process_start_time_seconds", "gauge", "Start time of the process since the epoch in seconds.", [("", (), _process_start_time())]),
    ]  # fmt: skip


@functools.cache  # read once, on the first scrape: importing the module reads no file
def _process_start_time() -> float:
    try:
        with open("/proc/self/stat", "rb") as stat:
            ticks = int(stat.read().rsplit(b")", 1)[1].split()[19])
        with open("/proc/uptime", "rb") as uptime:
            booted = time.time() - float(uptime.read().split()[0])
        return booted + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return time.time()


class Metrics:
    """The /metrics endpoint: the request metrics plus every collector, formatted on each scrape."""

    def __init__(self, http: HttpMetrics, collectors: Iterable[Collector] = ()) -> None:
        self.http = http
        self.collectors: list[Collector] = [http.families, *collectors, process_families]

    def add(self, collector: Collector) -> None:
        self.collectors.insert(-1, collector)

    def exposition(self, openmetrics: bool) -> bytes:
        families = [family for collect in self.collectors for family in collect() if family.samples]
        return render(families, openmetrics=openmetrics)

    def answer(self, headers: Iterable[tuple[bytes, bytes]]) -> tuple[bytes, str]:
        """(body, content type) for a scrape with these request headers."""
        openmetrics = wants_openmetrics(headers)
        return self.exposition(openmetrics), OPENMETRICS if openmetrics else TEXT


def wants_openmetrics(headers: Iterable[tuple[bytes, bytes]]) -> bool:
    """True when Accept lists application/openmetrics-text (Prometheus 2.x sends it with the highest q)."""
    return any(name == b"accept" and b"application/openmetrics-text" in value for name, value in headers)


def render(families: Iterable[Family], *, openmetrics: bool) -> bytes:
    lines: list[str] = []
    for family in families:
        # the text format has no info type (a gauge) and names counters with their _total suffix
        if openmetrics:
            name, kind = family.name, family.kind
        elif family.kind == "counter":
            name, kind = family.name + "_total", "counter"
        elif family.kind == "info":
            name, kind = family.name + "_info", "gauge"
        else:
            name, kind = family.name, family.kind
        lines.append(f"# HELP {name} {_escape_help(family.help)}")
        lines.append(f"# TYPE {name} {kind}")
        for suffix, labels, value in family.samples:
            text = ",".join(f'{key}="{_escape_label(value)}"' for key, value in labels)
            lines.append(
                f"{family.name}{suffix}{{{text}}} {_number(value)}"
                if text
                else f"{family.name}{suffix} {_number(value)}"
            )
    if openmetrics:
        lines.append("# EOF")
    return ("\n".join(lines) + "\n").encode()  # fmt: skip


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _escape_label(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    if isinstance(value, int):
        return str(value)
    if value == float("inf"):
        return "+Inf"
    if value == float("-inf"):
        return "-Inf"
    if math.isnan(value):
        return "NaN"
    return repr(value)
