"""The SIGTERM handler: a Python signal handler runs in the main thread between two bytecodes, perhaps
while that thread holds a lock. One that logged deadlocked a service whose access line was being queued
when SIGTERM came (the process never exited): the handler only sets flags and leaves the rest to the
event loop."""

import asyncio
import logging
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from logging.handlers import QueueHandler

import uvicorn
from nexus_platform._observability.logs import LogQueue
from nexus_platform._server.drain import DrainingServer
from nexus_platform.testing import NexusService

from tests.platform.conftest import Logs

HELD_SECONDS = 5.0


@contextmanager
def log_queue_held() -> Iterator[None]:
    """The JSON log queue's lock held by another thread (for up to HELD_SECONDS), as it is while a line
    is being queued."""
    (handler,) = [each for each in logging.getLogger().handlers if each.get_name() == "nexus-json"]
    assert isinstance(handler, QueueHandler)
    lines = handler.queue
    assert isinstance(lines, LogQueue)
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with lines.mutex:
            held.set()
            release.wait(HELD_SECONDS)

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait()
    try:
        yield
    finally:
        release.set()
        holder.join()


def test_a_signal_that_lands_mid_log_line_neither_logs_nor_waits_there(
    nexus_service: NexusService, logs: Logs
) -> None:
    app = nexus_service.create_app(environ={"DRAIN_SECONDS": "0", "LOG_LEVEL": "INFO"})
    server = DrainingServer(uvicorn.Config(app), app)
    loop = server.loop = asyncio.new_event_loop()
    drained: list[bool] = []
    app.context.on_drain.append(lambda: drained.append(True))
    try:
        with log_queue_held():
            started = time.monotonic()
            server.handle_exit(signal.SIGTERM, None)
            server.handle_exit(signal.SIGTERM, None)  # the second one: exit now
            took = time.monotonic() - started
        assert took < HELD_SECONDS / 2, "the signal handler waited for the log queue's lock"
        # the flags are set at once; the drain callbacks and the log lines run on the loop
        assert app.context.draining
        assert server.should_exit
        assert server.force_exit
        assert drained == []
        loop.run_until_complete(asyncio.sleep(0))
        assert drained == [True]
    finally:
        loop.close()
    logs.wait_for(lambda line: line["message"] == "second signal 15: exiting now")
    assert "signal 15: draining for 0s" in [line["message"] for line in logs.lines]
