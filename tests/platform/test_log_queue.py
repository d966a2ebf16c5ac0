"""The log plumbing is the standard library's (QueueHandler, QueueListener): no caller waits for stdout,
a full queue drops and counts, nothing is lost otherwise, and the exit writes what is queued."""

import asyncio
import json
import logging
import os
import subprocess
import sys
import threading
import time
from logging.handlers import QueueHandler
from pathlib import Path

from nexus_platform._observability.correlation import request_id_var
from nexus_platform._observability.logs import configure_logging, flush_logs


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_every_line_arrives_whole_and_in_each_threads_order(tmp_path: Path) -> None:
    threads, per_thread, from_loop = 4, 2000, 5000
    with (tmp_path / "out.jsonl").open("w") as stream:
        access_log = configure_logging("INFO", stream, buffer_bytes=1 << 30)
        [handler] = [each for each in logging.getLogger().handlers if each.get_name() == "nexus-json"]
        assert isinstance(handler, QueueHandler)  # the standard library's plumbing
        logger = logging.getLogger("test.threads")
        start = threading.Barrier(threads + 1)

        def worker(number: int) -> None:
            start.wait()
            for index in range(per_thread):
                logger.info("thread line", extra={"thread_no": number, "index": index})

        async def loop_lines() -> None:
            start.wait()
            for index in range(from_loop):
                token = request_id_var.set(f"loop-{index}")
                logger.info("in a request")  # formatted where it is logged: the request id is there
                request_id_var.reset(token)
                access_log.write("GET", f"/loop/{index}", 200, 0.001, f"loop-{index}", "")
                if index % 500 == 0:
                    await asyncio.sleep(0)

        workers = [threading.Thread(target=worker, args=(number,)) for number in range(threads)]
        for each in workers:
            each.start()
        asyncio.run(loop_lines())
        for each in workers:
            each.join()
        assert flush_logs(30)
    lines = json_lines((tmp_path / "out.jsonl").read_text())
    for number in range(threads):
        indexes = [line["index"] for line in lines if line.get("thread_no") == number]
        assert indexes == list(range(per_thread))
    from_requests = [(line["logger"], line["request_id"]) for line in lines if "request_id" in line]
    expected = [("test.threads", f"loop-{i}") for i in range(from_loop)]
    assert [each for each in from_requests if each[0] == "test.threads"] == expected
    assert [each[1] for each in from_requests if each[0] == "nexus.access"] == [e[1] for e in expected]
    assert access_log.lines.dropped == 0


def test_a_stalled_pipe_never_blocks_a_caller_and_the_drops_are_counted_and_reported(tmp_path: Path) -> None:
    """Nobody reads the pipe: the pipe (64 KiB) and the queue (64 KiB) fill, further lines are dropped and
    counted without anyone waiting; once the pipe is read again the queued lines arrive whole and a
    WARNING line says how many were lost."""
    read_end, write_end = os.pipe()
    stream = os.fdopen(write_end, "w")
    access_log = configure_logging("INFO", stream, buffer_bytes=1 << 16)
    path = "/v1/" + "x" * 400
    started = time.monotonic()
    for index in range(2000):  # about 1 MB of lines
        access_log.write("POST", path, 200, 0.001, f"stalled-{index}", "")
    assert time.monotonic() - started < 2, "a caller waited for stdout"
    assert access_log.lines.dropped > 1000
    received = tmp_path / "stdout.jsonl"
    with received.open("wb") as out:
        reader = subprocess.Popen(["cat"], stdin=read_end, stdout=out)  # another process, as a runtime
    os.close(read_end)
    assert flush_logs(10)  # what was queued is out: there is room again
    dropped = access_log.lines.dropped
    access_log.write("GET", "/after", 200, 0.001, "after-the-stall", "")
    assert flush_logs(10)
    stream.close()
    reader.wait(10)
    lines = json_lines(received.read_text())  # every line whole: json.loads raises on a torn one
    # one WARNING per batch written after drops (a batch formed while lines were being dropped says so)
    warnings = [line for line in lines if line["logger"] == "nexus.logs"]
    assert {warning["level"] for warning in warnings} == {"WARNING"}
    assert sum(warning["dropped_lines"] for warning in warnings) == dropped
    ids = [line["request_id"] for line in lines if line["logger"] == "nexus.access"]
    assert len(ids) == 2000 - dropped + 1
    assert ids[-1] == "after-the-stall"
    assert ids[:-1] == sorted(ids[:-1], key=lambda each: int(each.split("-")[1]))  # in order, a gap


def test_configuring_again_adds_no_thread_and_keeps_one_handler(tmp_path: Path) -> None:
    """Every create_app configures logging (a test suite builds hundreds of apps)."""
    with (tmp_path / "out.jsonl").open("w") as stream:
        configure_logging("INFO", stream)
        threads = threading.active_count()
        for _ in range(50):
            configure_logging("INFO", stream)
        assert threading.active_count() == threads
        logging.getLogger("test.again").warning("once")
        assert flush_logs(5)
    assert len(json_lines((tmp_path / "out.jsonl").read_text())) == 1


def test_lines_logged_after_the_stream_closed_never_reach_what_reuses_its_descriptor(tmp_path: Path) -> None:
    """A test's captured stdout closes while the root logger still writes to it; the next file or socket
    opened takes its descriptor number (the lines reached an HTTP client's socket as its status line)."""
    stream = (tmp_path / "closed.jsonl").open("w")
    number = stream.fileno()
    configure_logging("INFO", stream)
    stream.close()
    reused = os.open(tmp_path / "reused", os.O_WRONLY | os.O_CREAT)
    if reused != number:
        os.dup2(reused, number)
        os.close(reused)
    try:
        logging.getLogger("test.closed").warning("after the close")
        assert flush_logs(5)
    finally:
        os.close(number)
        configure_logging("INFO")  # back to stdout for the tests after this one
    assert (tmp_path / "reused").read_text() == ""  # the line is dropped: its stream is gone


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )


def test_importing_the_platform_registers_no_exit_hook_and_starts_no_thread() -> None:
    """No import-time side effects: the exit is the standard library's logging.shutdown."""
    result = _python(
        "import atexit, logging, threading\n"
        # the libraries' own hooks first (multiprocessing registers one when imported)
        "import litestar, msgspec, multiprocessing.util, uvicorn, uvicorn.protocols.http.httptools_impl\n"
        "hooks, threads = atexit._ncallbacks(), threading.active_count()\n"
        "import nexus_platform, nexus_platform._app, nexus_platform._server.drain\n"
        "print(atexit._ncallbacks() - hooks, threading.active_count() - threads)\n"
    )
    assert result.stdout.split() == ["0", "0"]


def test_the_exit_writes_every_queued_line_and_redacts_secrets() -> None:
    result = _python(
        "import logging\n"
        "from nexus_platform._observability.logs import configure_logging\n"
        "configure_logging('INFO', secrets=['s3cr3t-value'])\n"
        "log = logging.getLogger('test.exit')\n"
        "for index in range(3000):\n"
        "    log.info('line %d with s3cr3t-value', index)\n"
    )  # no flush: the process ends at once, and logging.shutdown waits for the writer
    lines = json_lines(result.stdout)
    assert [line["message"] for line in lines] == [f"line {index} with ***" for index in range(3000)]
    assert "s3cr3t-value" not in result.stdout
