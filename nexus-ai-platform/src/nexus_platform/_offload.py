"""Blocking work (inference in a library without asyncio) off the event loop, bounded by the same limit.

`await run_blocking(nexus, model.generate, prompt)` runs the call in the platform's pool of
MAX_CONCURRENT_REQUESTS threads. A timed-out, disconnected or shut-down request cannot stop a thread
that already runs, so:

- the request's slot stays taken until its thread is done: new requests are answered 503 at once instead
  of queueing behind abandoned work, and never more threads run than MAX_CONCURRENT_REQUESTS;
- the call can stop early: `cancelled()` turns true inside the thread once its request is cancelled
  (check it between steps: tokens, diffusion steps, audio frames).
"""

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol, TypeVar

__all__ = ["BlockingPool", "cancelled", "run_blocking"]

T = TypeVar("T")
_local = threading.local()


def cancelled() -> bool:
    """Inside `run_blocking`: whether the request that started this call has been cancelled."""
    flag: threading.Event | None = getattr(_local, "cancelled", None)
    return flag is not None and flag.is_set()


class BlockingPool:
    """The threads of `run_blocking`: started on first use, shut down when the app stops (its lifespan
    ends), started again if the same app runs again (a second TestClient of one app, say)."""

    def __init__(self, workers: int) -> None:
        self._workers = workers
        self._executor: ThreadPoolExecutor | None = None
        # calls whose request was cancelled while they ran: they still hold a slot
        self.abandoned = 0

    async def run(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        flag = threading.Event()

        def call() -> T:
            _local.cancelled = flag
            try:
                return function(*args, **kwargs)
            finally:
                _local.cancelled = None

        if self._executor is None:
            self._executor = ThreadPoolExecutor(self._workers, thread_name_prefix="nexus-blocking")
        work = self._executor.submit(call)
        try:
            return await asyncio.wrap_future(work)
        except asyncio.CancelledError:
            flag.set()
            if not work.cancel():  # already running: it keeps its slot until it returns
                loop = asyncio.get_running_loop()
                self.abandoned += 1
                work.add_done_callback(lambda _: loop.call_soon_threadsafe(self._release))
            raise

    def _release(self) -> None:
        self.abandoned -= 1

    def close(self) -> None:
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)


class _WithPool(Protocol):
    """What run_blocking needs of the context it is given (nexus_platform._context.NexusContext)."""

    @property
    def blocking(self) -> BlockingPool: ...


async def run_blocking(nexus: _WithPool, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """`function(*args, **kwargs)` in the platform's bounded thread pool (see the module's docstring)."""
    return await nexus.blocking.run(function, *args, **kwargs)
