# Managed by nexus-template: `copier update` replaces this file. Your code belongs in app/service.py.
"""`python -m app`: uvicorn with a graceful drain.

On SIGTERM (or SIGINT) the service first reports not ready (/readyz 503) while still serving for
DRAIN_SECONDS, so load balancers stop sending new work; then uvicorn stops accepting, lets in-flight
requests finish for up to SHUTDOWN_GRACE_SECONDS, runs the lifespan clean-up and the process exits 0.
A second signal exits at once.
"""

import asyncio
import contextvars
import logging
import socket
import time
from types import FrameType

import uvicorn

from app.nexus.asgi import NexusASGI
from app.nexus.serving import uvicorn_config

logger = logging.getLogger("nexus.server")


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, app: NexusASGI) -> None:
        super().__init__(config)
        self.nexus = app
        self.drain_deadline: float | None = None
        self.loop: asyncio.AbstractEventLoop | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        self.loop = asyncio.get_running_loop()
        await super().startup(sockets)
        if self.started:
            self.nexus.context.listening.set()

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # Not uvicorn's handler: that one re-raises the signal after shutdown, so the exit status
        # would be 143 instead of 0.
        # the handler interrupts whatever runs, a request included: log outside its context (no request id)
        log = contextvars.Context().run
        if self.drain_deadline is not None:
            log(logger.warning, "second signal %s: exiting now", sig)
            self.should_exit = True
            self.force_exit = True
            return
        context = self.nexus.context
        context.draining = True  # /readyz answers 503 from now on
        if self.loop is not None:
            self.loop.call_soon_threadsafe(context.begin_drain)
        self.drain_deadline = time.monotonic() + self.nexus.context.settings.drain_seconds
        log(logger.info, "signal %s: draining for %gs", sig, context.settings.drain_seconds)

    async def on_tick(self, counter: int) -> bool:
        if self.drain_deadline is not None and time.monotonic() >= self.drain_deadline:
            self.should_exit = True
        return await super().on_tick(counter)


def main() -> None:
    from app.main import app

    server = DrainingServer(uvicorn_config(app), app)
    server.run()
    if not server.started:
        raise SystemExit(3)  # uvicorn's status for a failed start-up (port taken, lifespan error)
