# Managed by nexus-template: `copier update` replaces this file. Your code belongs in app/service.py.
"""JSON lines on stdout: one access line per request, and every log record (uvicorn's included).

The access line is encoded straight from a msgspec struct, without a LogRecord: per-request logging
is on the hot path, and the stdlib machinery costs more than the request itself.
"""

import io
import logging
import sys
import time
from typing import Any, TextIO

import msgspec

from app.nexus.correlation import current_request_id

_encode = msgspec.json.Encoder(enc_hook=str).encode
# attributes every LogRecord has; anything else came through `extra=` and is logged as a field
_RECORD_FIELDS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "color_message",  # uvicorn's ANSI-coloured duplicate of the message
}


class _Clock:
    """ISO-8601 UTC timestamps with milliseconds; the seconds part is formatted once per second."""

    __slots__ = ("_prefix", "_second")

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def __call__(self, now: float) -> str:
        second = int(now)
        if second != self._second:
            self._second = second
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._prefix}.{int((now - second) * 1000):03d}Z"


timestamp = _Clock()


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": timestamp(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = current_request_id()
        if request_id:
            entry["request_id"] = request_id
        for key, value in record.__dict__.items():
            if key not in _RECORD_FIELDS and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return _encode(entry).decode()


class AccessLine(msgspec.Struct):
    time: str
    level: str
    logger: str
    message: str
    method: str
    path: str
    status: int
    duration_ms: float
    request_id: str


class AccessLog:
    """Writes one JSON line per request when the access logger is enabled for INFO."""

    __slots__ = ("enabled", "stream")

    def __init__(self, stream: TextIO, *, enabled: bool) -> None:
        self.stream = stream
        self.enabled = enabled

    def write(self, method: str, path: str, status: int, started: float, request_id: str) -> None:
        now = time.time()
        line = AccessLine(
            time=timestamp(now),
            level="INFO",
            logger="nexus.access",
            message="request",
            method=method,
            path=path,
            status=status,
            duration_ms=round((time.perf_counter() - started) * 1000, 3),
            request_id=request_id,
        )
        self.stream.write(_encode(line).decode() + "\n")


def configure_logging(level: str, stream: TextIO | None = None) -> AccessLog:
    """Route every logger (uvicorn's and httpx's too) through one JSON handler; return the access log."""
    if stream is None:
        # one write per line, flushed at once: logs must reach the container runtime promptly
        if isinstance(sys.stdout, io.TextIOWrapper):
            sys.stdout.reconfigure(line_buffering=True)
        stream = sys.stdout
    handler = logging.StreamHandler(stream)
    handler.set_name("nexus-json")
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    for previous in [each for each in root.handlers if each.get_name() == "nexus-json"]:
        root.removeHandler(previous)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "litestar"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    # request lines come from AccessLog; httpx would log every backend call at INFO
    logging.getLogger("uvicorn.access").disabled = True
    logging.getLogger("httpx").setLevel(max(logging.WARNING, root.level))
    return AccessLog(stream, enabled=logging.getLogger("nexus.access").isEnabledFor(logging.INFO))
