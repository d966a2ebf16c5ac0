"""`serve(app)`, what `python -m app` runs: uvicorn with a graceful drain.

On SIGTERM (or SIGINT) the service first reports not ready (/readyz 503) while still serving for
DRAIN_SECONDS, so load balancers stop sending new work; then uvicorn stops accepting, lets in-flight
requests finish for up to SHUTDOWN_GRACE_SECONDS, ends what is left (streams with an error event, other
requests with 503) and gives them UNWIND_SECONDS to run their clean-up, which can still use the
platform's resources: the lifespan clean-up (closing the HTTP client, the service's own teardown) runs
only after that, and the process exits 0. A second signal exits at once.
"""

import asyncio
import contextvars
import gc
import logging
import socket
import sys
import time
from collections.abc import Callable
from types import FrameType

import uvicorn

from nexus_platform._compat import (
    UvicornServer,
    listening_servers,
    open_connections,
    request_tasks,
    shut_down_lifespan,
)
from nexus_platform._config.settings import ConfigError
from nexus_platform._edge.asgi import NexusASGI
from nexus_platform._server.config import uvicorn_config

logger = logging.getLogger("nexus.server")

# after the grace period: how long ended requests get to unwind, and then cancelled ones
UNWIND_SECONDS = 1.0


class DrainingServer(UvicornServer):
    def __init__(self, config: uvicorn.Config, app: NexusASGI) -> None:
        super().__init__(config)
        self.nexus = app
        self.drain_deadline: float | None = None
        self.loop: asyncio.AbstractEventLoop | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        self.loop = asyncio.get_running_loop()
        await super().startup(sockets)
        if self.started:
            # what start-up built (app, routes, schema) lives as long as the process: frozen, out of the
            # cyclic collector's way, a full collection never walks it again (measured: docs/performance.md)
            gc.collect()
            gc.freeze()
            self.nexus.context.listening.set()

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # Not uvicorn's handler: that one re-raises the signal after shutdown, so the exit status
        # would be 143 instead of 0.
        # A Python signal handler runs in the main thread between two bytecodes, perhaps while that thread
        # holds a lock (the log queue's, mid-line): it only sets flags, and leaves anything that takes a
        # lock (logging, the drain callbacks) to the event loop (a log call here deadlocked a SIGTERM).
        if self.drain_deadline is not None:
            self.should_exit = True
            self.force_exit = True
            self._soon(logger.warning, "second signal %s: exiting now", sig)
            return
        context = self.nexus.context
        context.draining = True  # /readyz answers 503 from now on
        self.drain_deadline = time.monotonic() + context.settings.drain_seconds
        self._soon(context.begin_drain)
        self._soon(logger.info, "signal %s: draining for %gs", sig, context.settings.drain_seconds)

    def _soon(self, callback: Callable[..., object], *args: object) -> None:
        """Run `callback(*args)` on the event loop, outside any request's context (no request id)."""
        if self.loop is not None:  # None only before start-up, when there is nothing to drain or log
            self.loop.call_soon_threadsafe(callback, *args, context=contextvars.Context())

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """uvicorn's shutdown, except that requests cut by the grace period end before the lifespan does
        (uvicorn cancels them and runs the lifespan clean-up while they still unwind)."""
        for server in listening_servers(self):
            server.close()
        for sock in sockets or []:
            sock.close()
        for connection in list(open_connections(self)):
            connection.shutdown()  # idle keep-alive connections close; busy ones after their response
        if not await self._settled(self.config.timeout_graceful_shutdown or 0) and not self.force_exit:
            ended = self.nexus.exchanges.end_all("shutdown")
            logger.warning("shutdown grace period over: ending %d request(s)", ended)
            if not await self._settled(UNWIND_SECONDS):
                logger.error("cancelling %d task(s) that did not end", len(request_tasks(self)))
                for task in request_tasks(self):
                    task.cancel()
                await self._settled(UNWIND_SECONDS)
        if self.force_exit:
            return
        for server in listening_servers(self):
            await server.wait_closed()
        await shut_down_lifespan(self)

    async def _settled(self, seconds: float) -> bool:
        """Wait up to `seconds` for every connection and request task to finish; True when they did."""
        deadline = time.monotonic() + seconds
        while open_connections(self) or request_tasks(self):
            if self.force_exit or time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.05)
        return True

    async def on_tick(self, counter: int) -> bool:
        if self.drain_deadline is not None and time.monotonic() >= self.drain_deadline:
            self.should_exit = True
        return await super().on_tick(counter)


def serve(app: NexusASGI) -> None:
    """Serve `app` with uvicorn on SERVICE_HOST:SERVICE_PORT until a signal, draining first (`python -m
    app`); exit status 2 with one line when the TLS settings are unusable, 3 when the server could not
    start (port taken, lifespan error)."""
    try:
        config = uvicorn_config(app)
    except ConfigError as error:
        print(f"configuration error: {error}", file=sys.stderr)  # as create_app_or_exit reports settings
        raise SystemExit(2) from None
    server = DrainingServer(config, app)
    server.run()
    if not server.started:
        raise SystemExit(3)  # uvicorn's status for a failed start-up
