"""JSON lines on stdout: one access line per request, and every log record (uvicorn's included).

Per-request logging is on the hot path, so the access line is encoded straight from a msgspec struct
(no LogRecord). Every line goes through one LineWriter, which never makes its caller wait for stdout
(lines are written in batches, in the order they were logged, by the event loop while stdout takes them
and by a thread otherwise; see LineWriter). Other records pass through the Redactor: URL credentials and
the values of secret settings never reach stdout.
"""

import asyncio
import atexit
import logging
import os
import select
import stat
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any, Protocol, TextIO

import msgspec

from nexus_platform._http.correlation import current_request_id
from nexus_platform._observability.redaction import Redactor
from nexus_platform._observability.tracing import current_trace_id

__all__ = [
    "AccessLog",
    "ByteSink",
    "JsonFormatter",
    "LineWriter",
    "configure_logging",
    "flush_logs",
    "held_logs",
    "timestamp",
]

_encode = msgspec.json.Encoder(enc_hook=str).encode
# attributes every LogRecord has; anything else came through `extra=` and is logged as a field
_RECORD_FIELDS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "color_message",  # uvicorn's ANSI-coloured duplicate of the message
}
# access-line fields come from the client: bounded, so that a 60 KB path does not make a 60 KB line
MAX_PATH_CHARS = 512
MAX_METHOD_CHARS = 16
# seconds the exit waits for buffered lines when stdout is stalled
_EXIT_FLUSH_SECONDS = 2.0


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
    def __init__(self, redact: Redactor | None = None) -> None:
        super().__init__()
        self.redact = redact or Redactor()

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
        trace_id = current_trace_id()
        if trace_id:
            entry["trace_id"] = trace_id
        for key, value in record.__dict__.items():
            if key not in _RECORD_FIELDS and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return self.redact(_encode(entry).decode())


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
    trace_id: str = ""
    # why the platform or the client ended the request early (nexus_platform._http.exchange.Outcome); absent if not
    outcome: str | None = None


class ByteSink(Protocol):
    """Where a LineWriter writes: a binary stream (sys.stdout.buffer) or a text one wrapped in bytes."""

    def write(self, data: bytes, /) -> object: ...

    def flush(self) -> None: ...


class LineWriter:
    """Lines go to a bounded buffer and are written to the stream in batches, in the order they were
    logged; no caller ever waits for the stream.

    A daemon thread collects for up to FLUSH_SECONDS (urgent lines, warnings and errors, wake it at once)
    and writes each batch. While an event loop is attached (the app's, from start-up to shutdown), the
    lines logged in the loop's thread are written by the loop itself: a batch FLUSH_SECONDS after its
    first line or at LOOP_BATCH_BYTES (urgent lines at once), in pieces the stream takes without
    blocking; what it does not take goes to the thread. (A thread that wakes to write needs the GIL;
    while the loop is busy it waits for it and is woken at every release: about a tenth of a JSON POST's
    time went there.)

    When the stream stalls (nobody reads the pipe) and the buffer holds `max_buffer_bytes`, further lines
    are dropped and counted (`dropped`); once the stream takes data again a WARNING line says how many
    were lost, at the place where they were lost.
    """

    FLUSH_SECONDS = 0.05
    # the loop writes its batch at this size without waiting for FLUSH_SECONDS: a quarter of a pipe's
    # 64 KiB, so that a reader that keeps up leaves room for the next batch
    LOOP_BATCH_BYTES = 16384

    def __init__(self, stream: ByteSink, *, max_buffer_bytes: int = 1 << 20) -> None:
        self.max_buffer_bytes = max_buffer_bytes
        self.dropped = 0  # lines lost to a full buffer since start (the metric nexus_log_lines_dropped_total)
        self._stream = stream
        self._fd = _fileno(stream)
        self._pending: list[bytes | list[int]] = []  # a list[int] marks a gap: [lines dropped there]
        self._pending_bytes = 0
        self._gap: list[int] | None = None
        self._urgent = False
        self._busy = False
        self._holds = 0  # held() blocks in progress: nothing is written until there are none
        self._clock = _Clock()  # the writer thread's own (the shared one is not thread-safe)
        # the attached loop and its thread; the loop's timer for the batch it collects
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._timer: asyncio.TimerHandle | None = None
        kind = _file_kind(self._fd)
        self._never_blocks = kind == stat.S_IFREG
        # poll() vouches for a PIPE_BUF write to a pipe or socket; a terminal may block even then
        self._loop_may_write = self._fd is None or kind in (stat.S_IFREG, stat.S_IFIFO, stat.S_IFSOCK)
        self._writable = select.poll()  # whether the stream takes a PIPE_BUF piece now
        if self._fd is not None:
            self._writable.register(self._fd, select.POLLOUT)
        self._flush_waiters = 0  # callers of flush() waiting for the buffer to empty
        # reentrant: a signal handler that logs may interrupt a write() of the same thread (server.py does)
        self._changed = threading.Condition(threading.RLock())
        self._thread = threading.Thread(target=self._run, name="nexus-log-writer", daemon=True)
        self._thread.start()

    def write(self, line: bytes, *, urgent: bool = False) -> None:
        with self._changed:
            if self._pending_bytes + len(line) > self.max_buffer_bytes:
                self.dropped += 1
                if self._gap is None:
                    self._gap = [0]
                    self._pending.append(self._gap)
                self._gap[0] += 1
                return
            self._gap = None
            self._pending.append(line)
            self._pending_bytes += len(line)
            loop = self._loop
            if loop is None or threading.get_ident() != self._loop_thread or not loop.is_running():
                if urgent:
                    self._urgent = True
                    self._changed.notify_all()
                elif len(self._pending) == 1 or self._timer is not None:  # the loop may not come back
                    self._changed.notify_all()
                return
            if not urgent and self._pending_bytes < self.LOOP_BATCH_BYTES:
                if self._timer is None:
                    self._timer = loop.call_later(self.FLUSH_SECONDS, self._write_in_loop)
                return
        self._write_in_loop()  # an urgent line or a full batch in the loop's thread: now

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """From now on the lines logged in `loop`'s thread (the calling thread) are written by the loop
        (unless the stream is one that may block even when poll says it has room: a terminal)."""
        with self._changed:
            if self._timer is not None:  # an earlier loop's, which stopped without detach
                self._timer.cancel()
                self._timer = None
            if self._pending:
                self._urgent = True
                self._changed.notify_all()
            if self._loop_may_write:
                self._loop, self._loop_thread = loop, threading.get_ident()

    def detach(self, loop: asyncio.AbstractEventLoop) -> None:
        """The thread writes everything again (the loop is stopping); what the loop held is written now."""
        with self._changed:
            if self._loop is not loop:
                return  # another app attached since
            if self._timer is not None:
                self._timer.cancel()
            self._loop = self._loop_thread = self._timer = None
            if self._pending:
                self._urgent = True
                self._changed.notify_all()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every line logged so far is written (at most `timeout` seconds); True when done."""
        with self._changed:
            return self._flushed(timeout)

    @contextmanager
    def held(self, timeout: float | None = None) -> Iterator[bool]:
        """flush(timeout), then nothing is written until the block ends; yields what flush
        returned. Lines logged meanwhile wait in the buffer: no caller waits, the block may log.

        For a reader of the stream that must not race a write: pytest's capfd reads its file from offset
        0, so a batch written during the read lands over the first lines.
        """
        with self._changed:
            flushed = self._flushed(timeout)
            self._holds += 1
        try:
            yield flushed
        finally:
            with self._changed:
                self._holds -= 1
                self._changed.notify_all()

    def _flushed(self, timeout: float | None) -> bool:
        self._urgent = True
        self._changed.notify_all()
        self._flush_waiters += 1
        try:
            return self._changed.wait_for(lambda: not self._pending and not self._busy, timeout)
        finally:
            self._flush_waiters -= 1

    def _writable_now(self) -> bool:
        """Lines are waiting, nothing holds them and nobody is writing."""
        return bool(self._pending) and not self._holds and not self._busy

    def _take(self, clock: _Clock) -> bytes:
        """The pending lines as one batch (the caller holds the lock and becomes the busy writer).

        Busy first: a signal handler that logs in between (in this thread, through the reentrant lock)
        leaves its line to the thread, behind the batch."""
        self._busy = True
        batch, self._pending, self._pending_bytes = self._pending, [], 0
        self._gap = None
        self._urgent = False
        return b"".join(item if isinstance(item, bytes) else _dropped_line(item[0], clock) for item in batch)

    def _run(self) -> None:
        while True:
            with self._changed:
                while True:
                    self._changed.wait_for(self._writable_now)
                    if not self._urgent:  # collect a batch; an urgent line or flush() ends the wait early
                        self._changed.wait_for(lambda: self._urgent, self.FLUSH_SECONDS)
                    # held() began, or the loop took the batch, while the batch was collected
                    if self._writable_now():
                        break
                data = self._take(self._clock)
            try:
                self._write(data)
            finally:
                with self._changed:
                    self._busy = False
                    self._changed.notify_all()

    def _write_in_loop(self) -> None:
        """In the attached loop's thread: write the pending lines as far as the stream takes them without
        blocking; the thread writes the rest. Busy or held: the thread writes them when it is done."""
        with self._changed:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            if self._busy or self._holds or not self._pending:
                if self._pending:
                    self._urgent = True
                    self._changed.notify_all()
                return
            data = self._take(timestamp)
        rest = b""
        try:
            rest = self._write_without_blocking(data)
        finally:
            with self._changed:
                if rest:  # before busy ends: nothing may be written ahead of it
                    self._pending.insert(0, rest)
                    self._pending_bytes += len(rest)
                    self._urgent = True
                self._busy = False
                # the thread writes what is left, and what other threads logged meanwhile; otherwise it
                # sleeps on (waking it costs the loop)
                if self._pending or self._flush_waiters:
                    self._changed.notify_all()

    def _write_without_blocking(self, data: bytes) -> bytes:
        """Write what the stream takes at once; return the rest. A pipe or socket is written in pieces of
        PIPE_BUF bytes while poll says it has room (it takes such a piece whole without blocking)."""
        if self._fd is None or self._never_blocks:
            self._write(data)
            return b""
        view = memoryview(data)
        try:
            while view and self._writable.poll(0):
                view = view[os.write(self._fd, view[: select.PIPE_BUF]) :]
        except BlockingIOError:
            pass
        except (OSError, ValueError):  # stdout closed or gone: logs cannot stop the service
            return b""
        return bytes(view)

    def _write(self, data: bytes) -> None:
        try:
            if self._fd is None:
                self._stream.write(data)
                self._stream.flush()
                return
            view = memoryview(data)
            while view:
                try:
                    view = view[os.write(self._fd, view) :]
                except BlockingIOError:  # a non-blocking stdout that is full: wait until it takes more
                    select.select([], [self._fd], [], 1.0)
        except (OSError, ValueError):  # stdout closed or gone: logs cannot stop the service
            pass


def _file_kind(fd: int | None) -> int | None:
    """stat.S_IFREG (a file on disk: a write never waits for a reader), S_IFIFO, S_IFSOCK, ... or None."""
    if fd is None:
        return None
    try:
        return stat.S_IFMT(os.fstat(fd).st_mode)
    except OSError:
        return None


def _fileno(stream: ByteSink) -> int | None:
    """The file descriptor behind `stream` (written directly, so that no lock of the stream is held while
    the pipe is full), or None for streams without one."""
    try:
        stream.flush()
        fileno: Callable[[], int] | None = getattr(stream, "fileno", None)
        return fileno() if fileno is not None else None
    except (AttributeError, OSError, ValueError):
        return None


def _dropped_line(count: int, clock: _Clock) -> bytes:
    entry = {
        "time": clock(time.time()),
        "level": "WARNING",
        "logger": "nexus.logs",
        "message": f"{count} log line(s) dropped here: stdout was not read fast enough (buffer full)",
        "dropped_lines": count,
    }
    return _encode(entry) + b"\n"


class JsonLinesHandler(logging.Handler):
    """A logging handler that formats with JsonFormatter and writes through the LineWriter."""

    def __init__(self, writer: LineWriter, redact: Redactor) -> None:
        super().__init__()
        self.writer = writer
        self.setFormatter(JsonFormatter(redact))

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
        seconds: float,
        request_id: str,
        trace_id: str,
        *,
        bytes_sent: int = 0,
        outcome: str | None = None,
    ) -> None:
        if len(path) > MAX_PATH_CHARS:
            path = path[:MAX_PATH_CHARS] + "…"
        line = AccessLine(
            time=timestamp(time.time()),
            level="INFO",
            logger="nexus.access",
            message="client closed request" if status == 499 else "request",
            method=method[:MAX_METHOD_CHARS],
            path=path,
            status=status,
            duration_ms=round(seconds * 1000, 3),
            request_id=request_id,
            bytes=bytes_sent,
            trace_id=trace_id,
            outcome=outcome,
        )
        self.writer.write(_encode(line) + b"\n", urgent=outcome is not None)


class _TextStream:
    """Bytes written to a text stream (a StringIO) without a binary buffer."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, data: bytes) -> None:
        self._stream.write(data.decode())

    def flush(self) -> None:
        self._stream.flush()


# one writer (and one writer thread) per stream for the life of the process, however often logging is
# configured (every create_app does it; tests build many apps)
_writers: dict[int, tuple[TextIO, LineWriter]] = {}
_writers_lock = threading.Lock()


def _writer_for(stream: TextIO, buffer_bytes: int) -> LineWriter:
    with _writers_lock:
        known = _writers.get(id(stream))
        if known is None or known[0] is not stream:
            binary = getattr(stream, "buffer", None)
            stream.flush()  # what was printed before goes out first
            writer = LineWriter(
                binary if binary is not None else _TextStream(stream), max_buffer_bytes=buffer_bytes
            )
            known = _writers[id(stream)] = (stream, writer)
        known[1].max_buffer_bytes = buffer_bytes
        return known[1]


@atexit.register
def flush_logs(timeout: float = _EXIT_FLUSH_SECONDS) -> bool:
    """Write out every buffered line (at exit: for at most a few seconds, even when stdout is stalled)."""
    with _writers_lock:
        writers = [writer for _, writer in _writers.values()]
    return all(writer.flush(timeout) for writer in writers)


@contextmanager
def held_logs(timeout: float = _EXIT_FLUSH_SECONDS) -> Iterator[bool]:
    """flush_logs(timeout), then no log line is written until the block ends (see LineWriter.held)."""
    with _writers_lock:
        writers = [writer for _, writer in _writers.values()]
    with ExitStack() as stack:
        yield all(stack.enter_context(writer.held(timeout)) for writer in writers)


def configure_logging(
    level: str, stream: TextIO | None = None, *, buffer_bytes: int = 1 << 20, secrets: Iterable[str] = ()
) -> AccessLog:
    """Route every logger (uvicorn's and httpx's too) through one JSON handler; return the access log.

    `secrets` are values never to be logged (the secret settings); `buffer_bytes` bounds the lines held
    while stdout is not read.
    """
    writer = _writer_for(stream or sys.stdout, buffer_bytes)
    handler = JsonLinesHandler(writer, Redactor(secrets))
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
