# Managed by nexus-template: `copier update` replaces this file. Your code belongs in app/service.py.
"""A request body that stalls or trickles is answered 408 and frees its concurrency slot.

The client may fall at most BODY_TIMEOUT_SECONDS behind a pace of MIN_BODY_BYTES_PER_SECOND: the time the
app spends waiting for body bytes is charged against a credit of BODY_TIMEOUT_SECONDS, and every byte that
arrives earns back 1/MIN_BODY_BYTES_PER_SECOND seconds (never more than BODY_TIMEOUT_SECONDS in all). A
silent body is cut off after BODY_TIMEOUT_SECONDS, a trickle soon after; time the app spends on anything
else is not charged. Once the body is complete, receive() is passed through untouched (a streaming
response waits there for the client to disconnect).
"""

import asyncio
import logging
import time

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, ReceiveMessage, Scope, Send

from app.nexus._errors import JSON, error_body

__all__ = ["BodyRateGuard"]

logger = logging.getLogger("nexus.bodyguard")

_TOO_SLOW = error_body(
    408,
    "The request body arrived too slowly (BODY_TIMEOUT_SECONDS, MIN_BODY_BYTES_PER_SECOND)",
    code="body_timeout",
)


class _BodyTooSlow(BaseException):
    """Raised from receive(). A BaseException, so that the framework's exception handlers (which turn
    any Exception into a 500) let it through to the guard."""


class BodyRateGuard:
    def __init__(self, app: ASGIApp, *, timeout: float, min_bytes_per_second: int) -> None:
        self.app = app
        self.timeout = timeout
        self.seconds_per_byte = 1 / min_bytes_per_second

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        credit = self.timeout
        complete = False
        started = False

        async def guarded_receive() -> ReceiveMessage:
            nonlocal credit, complete
            if complete:
                return await receive()
            waiting_since = time.monotonic()
            try:
                async with asyncio.timeout(credit):
                    message = await receive()
            except TimeoutError:
                raise _BodyTooSlow from None
            waited = time.monotonic() - waiting_since
            body = message.get("body", b"") if message["type"] == "http.request" else b""
            credit = min(self.timeout, credit - waited + len(body) * self.seconds_per_byte)
            complete = message["type"] != "http.request" or not message.get("more_body", False)
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            started = True
            await send(message)

        try:
            await self.app(scope, guarded_receive, tracked_send)
        except _BodyTooSlow:
            if started:  # the app answered before reading all of the body: the server closes the connection
                logger.warning("request body too slow after the response started: connection closed")
                return
            logger.warning("request body too slow: answered 408")
            headers: list[tuple[bytes, bytes]] = [
                (b"content-type", JSON.encode()),
                (b"content-length", str(len(_TOO_SLOW)).encode()),
                (b"cache-control", b"no-store"),
                (b"connection", b"close"),  # the rest of the body is still on its way
            ]
            await send({"type": "http.response.start", "status": 408, "headers": headers})
            await send({"type": "http.response.body", "body": _TOO_SLOW, "more_body": False})
