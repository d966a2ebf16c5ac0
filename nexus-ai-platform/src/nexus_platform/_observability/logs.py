"""JSON lines on stdout: one access line per request, and every log record (uvicorn's included).

The standard library's plumbing: a `QueueHandler` formats each record in the thread that logs it (the
request id and trace id are context variables of that thread) and puts the encoded line on a `LogQueue`;
one `QueueListener` thread per stream writes the lines out in the order they were queued. The access
line is on the hot path, so it skips the LogRecord: a msgspec struct encoded straight onto the same queue.

Invariants:
- nobody who logs ever waits for stdout: the queue holds at most LOG_BUFFER_BYTES of lines, and a line
  that does not fit is dropped and counted (`LogQueue.dropped`, the metric nexus_log_lines_dropped_total);
  once stdout takes lines again a WARNING line says how many were lost;
- lines from one thread come out in the order that thread logged them;
- other records pass through the Redactor: URL credentials and the values of secret settings never reach
  stdout;
- at exit, `logging.shutdown` (the standard library's own exit hook) flushes the handler, which waits for
  the listener to write what is queued, for at most a few seconds when stdout is stalled.
"""

import logging
import os
import queue
import select
import sys
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from logging.handlers import QueueHandler, QueueListener
from typing import TYPE_CHECKING, Any, TextIO

import msgspec

from nexus_platform._observability.correlation import current_request_id
from nexus_platform._observability.redaction import Redactor
from nexus_platform._observability.tracing import current_trace_id

if TYPE_CHECKING:
    from nexus_platform._observability.generation import Generation

__all__ = [
    "AccessLog",
    "JsonFormatter",
    "LogQueue",
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
# the model a client names is its own text (the request's validation bounds it at 256)
MAX_MODEL_CHARS = 256
# seconds the exit waits for queued lines when stdout is stalled
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
    # the fingerprint of the API key the request came with (nexus_platform._edge.access); absent if none
    key: str | None = None
    # a model request's (nexus_platform._observability.generation): absent for other requests
    model: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    # a stream's first event, from the request's arrival
    ttft_ms: float | None = None


class LogQueue(queue.Queue[bytes | None]):
    """Encoded lines on their way to stdout, bounded by their bytes (`max_bytes`) rather than their count.

    `offer` never blocks: a line that does not fit is dropped and counted. (The bound is checked before
    the put without the queue's lock, so threads logging at once may overshoot it by a line each.)"""

    def __init__(self, max_bytes: int) -> None:
        super().__init__()  # no maxsize: offer() bounds the bytes; the listener's sentinel always fits
        self.max_bytes = max_bytes
        self.dropped = 0  # lines lost to a full queue since start
        self._drops = threading.Lock()

    def _init(self, maxsize: int) -> None:
        self.queue: deque[bytes | None] = deque()
        self.bytes = 0

    def _put(self, item: bytes | None) -> None:
        self.queue.append(item)
        self.bytes += len(item) if item is not None else 0

    def _get(self) -> bytes | None:
        item = self.queue.popleft()
        self.bytes -= len(item) if item is not None else 0
        return item

    def offer(self, line: bytes) -> None:
        if self.bytes + len(line) > self.max_bytes:
            with self._drops:  # rare (stdout stalled), and += is not atomic across threads
                self.dropped += 1
            return
        self.put_nowait(line)

    def written(self, timeout: float) -> bool:
        """Wait until every line queued so far is written (at most `timeout` seconds); True when done."""
        with self.all_tasks_done:
            return self.all_tasks_done.wait_for(lambda: not self.unfinished_tasks, timeout)


class _JsonQueueHandler(QueueHandler):
    """Formats a record into its JSON line where it is logged; the listener writes it."""

    queue: LogQueue

    def __init__(self, lines: LogQueue, redact: Redactor) -> None:
        super().__init__(lines)
        self.setFormatter(JsonFormatter(redact))

    def prepare(self, record: logging.LogRecord) -> bytes:
        return self.format(record).encode() + b"\n"

    def enqueue(self, record: Any) -> None:  # the prepared line (QueueHandler.emit passes prepare's result)
        self.queue.offer(record)

    def flush(self) -> None:
        # logging.shutdown calls this at exit: what is queued goes out first, unless stdout is stalled
        self.queue.written(_EXIT_FLUSH_SECONDS)


class _LineWriter(QueueListener):
    """The thread that writes a stream's lines, in batches: after catching up it pauses FLUSH_SECONDS so
    that lines collect (a thread woken for every line needs the GIL each time, which the event loop pays
    for), and a batch is one write."""

    FLUSH_SECONDS = 0.05
    BATCH_BYTES = 1 << 16

    queue: LogQueue

    def __init__(self, lines: LogQueue, stream: TextIO) -> None:
        super().__init__(lines)
        self._stream = stream
        self._fd = _fileno(stream)
        self._batch: list[bytes] = []
        self._batch_bytes = 0
        self._caught_up = False
        self._reported_drops = 0
        self.writing = threading.Lock()  # held while a batch is written (held_logs waits for it)

    def dequeue(self, block: bool) -> Any:  # a line, or None (the sentinel)
        if self._caught_up:
            self._caught_up = False
            time.sleep(self.FLUSH_SECONDS)
        return self.queue.get(block)

    def handle(self, record: Any) -> None:  # a line (QueueListener passes what dequeue returned)
        self._batch.append(record)
        self._batch_bytes += len(record)
        # the last queued line: written before it is marked done, so `LogQueue.written` means written
        if self.queue.empty() or self._batch_bytes >= self.BATCH_BYTES:
            self._caught_up = self.queue.empty()
            dropped = self.queue.dropped
            if dropped != self._reported_drops:  # written after the lines queued before the drops
                self._batch.append(_dropped_line(dropped - self._reported_drops))
                self._reported_drops = dropped
            data = b"".join(self._batch)
            self._batch.clear()
            self._batch_bytes = 0
            with self.writing:
                self._write(data)

    def _write(self, data: bytes) -> None:
        if self._stream.closed:  # its descriptor's number may be another file's or socket's by now
            return
        try:
            if self._fd is None:  # a text stream without a file descriptor (StringIO)
                self._stream.write(data.decode())
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


def _fileno(stream: TextIO) -> int | None:
    """The file descriptor behind `stream`, written directly so that no lock of the stream is held while
    a pipe is full; None for streams without one."""
    try:
        stream.flush()
        return stream.fileno()
    except (AttributeError, OSError, ValueError):
        return None


def _dropped_line(count: int) -> bytes:
    now = time.time()
    entry = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}Z",
        "level": "WARNING",
        "logger": "nexus.logs",
        "message": f"{count} log line(s) dropped: stdout was not read fast enough (LOG_BUFFER_BYTES full)",
        "dropped_lines": count,
    }
    return _encode(entry) + b"\n"


class AccessLog:
    """Writes one JSON line per request when the access logger is enabled for INFO."""

    __slots__ = ("enabled", "lines")

    def __init__(self, lines: LogQueue, *, enabled: bool) -> None:
        self.lines = lines
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
        key: str | None = None,
        generation: "Generation | None" = None,
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
            key=key,
        )
        if generation is not None:
            line.model = generation.model[:MAX_MODEL_CHARS]
            line.prompt_tokens = generation.prompt_tokens
            line.completion_tokens = generation.completion_tokens
            first = generation.first_token_seconds
            line.ttft_ms = round(first * 1000, 3) if first is not None else None
        self.lines.offer(_encode(line) + b"\n")


# one queue and one writer thread per stream for the life of the process, however often logging is
# configured (every create_app does it; tests build many apps)
_writers: dict[int, tuple[TextIO, _LineWriter]] = {}
_writers_lock = threading.Lock()


def _queue_for(stream: TextIO, buffer_bytes: int) -> LogQueue:
    with _writers_lock:
        known = _writers.get(id(stream))
        if known is None or known[0] is not stream:
            stream.flush()  # what was printed before goes out first
            writer = _LineWriter(LogQueue(buffer_bytes), stream)
            writer.start()
            known = _writers[id(stream)] = (stream, writer)
        known[1].queue.max_bytes = buffer_bytes
        return known[1].queue


def _all_writers() -> list[_LineWriter]:
    with _writers_lock:
        return [writer for _, writer in _writers.values()]


def flush_logs(timeout: float = _EXIT_FLUSH_SECONDS) -> bool:
    """Wait until every line logged so far is written (at most `timeout` seconds); True when done."""
    return all(writer.queue.written(timeout) for writer in _all_writers())


@contextmanager
def held_logs(timeout: float = _EXIT_FLUSH_SECONDS) -> Iterator[bool]:
    """flush_logs(timeout), then no batch is written until the block ends; yields what flush_logs
    returned. For a reader of the stream that must not race a write (pytest's capfd reads its file and
    then truncates it: a batch written in between would be lost). Lines logged meanwhile wait in the queue."""
    flushed = flush_logs(timeout)
    with ExitStack() as stack:
        for writer in _all_writers():
            stack.enter_context(writer.writing)
        yield flushed


def configure_logging(
    level: str, stream: TextIO | None = None, *, buffer_bytes: int = 1 << 20, secrets: Iterable[str] = ()
) -> AccessLog:
    """Route every logger (uvicorn's and httpx's too) through one JSON handler; return the access log.

    `secrets` are values never to be logged (the secret settings); `buffer_bytes` bounds the lines held
    while stdout is not read.
    """
    lines = _queue_for(stream or sys.stdout, buffer_bytes)
    handler = _JsonQueueHandler(lines, Redactor(secrets))
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
    return AccessLog(lines, enabled=logging.getLogger("nexus.access").isEnabledFor(logging.INFO))
