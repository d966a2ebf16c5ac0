# Managed by nexus-template: `copier update` replaces this file. Your code belongs in app/service.py.
"""JSON lines on stdout: one access line per request, and every log record (uvicorn's included).

Per-request logging is on the hot path, so the access line is encoded straight from a msgspec struct
(no LogRecord), and lines are written by one LineWriter: one system call per event-loop iteration
rather than one per line (within 50 ms; warnings and errors at once), in the order they were logged.
"""

import asyncio
import atexit
import logging
import sys
import threading
import time
from typing import Any, BinaryIO, TextIO

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
    """ISO-8601 UTC timestamps with milliseconds, formatted at most once per millisecond."""

    __slots__ = ("_millisecond", "_second", "_seconds_text", "_text")

    def __init__(self) -> None:
        self._second = self._millisecond = -1
        self._seconds_text = self._text = ""

    def __call__(self, now: float) -> str:
        millisecond = int(now * 1000)
        if millisecond != self._millisecond:
            self._millisecond = millisecond
            second = millisecond // 1000
            if second != self._second:
                self._second = second
                self._seconds_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._text = f"{self._seconds_text}.{millisecond % 1000:03d}Z"
        return self._text


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


class AccessLine(msgspec.Struct, omit_defaults=True):
    time: str
    level: str
    logger: str
    message: str
    method: str
    path: str
    status: int
    duration_ms: float
    request_id: str
    bytes: int
    # why the platform or the client ended the request early (app.nexus.exchange.Outcome); absent if not
    outcome: str | None = None


class LineWriter:
    """Collects lines and writes them in batches: within FLUSH_SECONDS for routine lines (access lines),
    at the end of the current event-loop iteration for urgent ones (warnings and errors), and at once
    outside a running loop (start-up, other threads, exit)."""

    FLUSH_SECONDS = 0.05

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._pending: list[bytes] = []
        self._timer: asyncio.TimerHandle | None = None
        self._lock = threading.Lock()
        atexit.register(self.flush)

    def write(self, line: bytes, *, urgent: bool = False) -> None:
        self._pending.append(line)
        if self._timer is not None and not urgent:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush()
            return
        if urgent:
            loop.call_soon(self.flush)
        else:
            self._timer = loop.call_later(self.FLUSH_SECONDS, self.flush)

    def flush(self) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            if not self._pending:
                return
            data = b"".join(self._pending)
            self._pending.clear()
            try:
                self._stream.write(data)
                self._stream.flush()
            except (OSError, ValueError):  # stdout closed or gone: logs cannot stop the service
                pass


class JsonLinesHandler(logging.Handler):
    """A logging handler that formats with JsonFormatter and writes through the LineWriter."""

    def __init__(self, writer: LineWriter) -> None:
        super().__init__()
        self.writer = writer
        self.setFormatter(JsonFormatter())

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.writer.write(self.format(record).encode() + b"\n", urgent=record.levelno >= logging.WARNING)
        except Exception:  # noqa: BLE001 - logging's own convention
            self.handleError(record)


class AccessLog:
    """Writes one JSON line per request when the access logger is enabled for INFO."""

    __slots__ = ("enabled", "writer")

    def __init__(self, writer: LineWriter, *, enabled: bool) -> None:
        self.writer = writer
        self.enabled = enabled

    def write(
        self,
        method: str,
        path: str,
        status: int,
        started: float,
        request_id: str,
        *,
        bytes_sent: int = 0,
        outcome: str | None = None,
    ) -> None:
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
            bytes=bytes_sent,
            outcome=outcome,
        )
        self.writer.write(_encode(line) + b"\n", urgent=outcome is not None)


class _TextStream:
    """Bytes written to a text stream (pytest's capture, a StringIO) without a binary buffer."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, data: bytes) -> None:
        self._stream.write(data.decode())

    def flush(self) -> None:
        self._stream.flush()


def configure_logging(level: str, stream: TextIO | None = None) -> AccessLog:
    """Route every logger (uvicorn's and httpx's too) through one JSON handler; return the access log."""
    stream = stream or sys.stdout
    binary = getattr(stream, "buffer", None)
    if binary is not None:
        stream.flush()  # what was printed before goes out first
    writer = LineWriter(binary if binary is not None else _TextStream(stream))
    handler = JsonLinesHandler(writer)
    handler.set_name("nexus-json")
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
    return AccessLog(writer, enabled=logging.getLogger("nexus.access").isEnabledFor(logging.INFO))
