"""Every use of Litestar's and uvicorn's internals by the platform code, in one place.

Checked against litestar 2.25.0 and uvicorn 0.54.0 (nexus-ai-platform's pyproject.toml); tests/platform/test_compat.py
fails when an installed release changes one of them. Nothing else in nexus_platform reads a private attribute of either
library or overrides one of their undocumented methods except through the names here:

- the JSON body Litestar already decoded, read back from the request's private connection state;
- an error raised inside Litestar's body decoding, recognised by its frame (`decode_json`);
- Litestar's streaming response, made to send its chunks from the request's own task;
- uvicorn's timeouts, typed `int`, given fractions of a second;
- `UvicornServer`, subclassed by nexus_platform._server.drain, which overrides `SERVER_HOOKS` and reads the server's
  connections, request tasks, listening sockets and lifespan through the functions below;
- `UvicornHttpProtocol`, subclassed by nexus_platform._server.protocol, which overrides `PROTOCOL_HOOKS` and drives
  uvicorn's keep-alive timer and request cycle through the functions below.
"""

import asyncio
from typing import Any, Protocol, cast

import uvicorn
from litestar import Request
from litestar.response.base import ASGIResponse
from litestar.response.streaming import ASGIStreamingResponse
from litestar.types import Empty, Receive, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

__all__ = [
    "LITESTAR_CHECKED",
    "PROTOCOL_HOOKS",
    "SERVER_HOOKS",
    "UVICORN_CHECKED",
    "Connection",
    "UvicornHttpProtocol",
    "UvicornServer",
    "arm_keep_alive_timer",
    "cancel_keep_alive_timer",
    "decoded_json_body",
    "keep_alive_timer_armed",
    "listening_servers",
    "open_connections",
    "raised_while_decoding_json",
    "received_body",
    "request_cycle",
    "request_tasks",
    "shut_down_lifespan",
    "streamed_in_request_task",
    "uvicorn_seconds",
]

LITESTAR_CHECKED = "2.25.0"
UVICORN_CHECKED = "0.54.0"

# --- Litestar -------------------------------------------------------------------------------------------

# the function (litestar.serialization.decode_json) whose frame marks an error raised while decoding a body
_DECODE_FRAME = "decode_json"


def decoded_json_body(request: Request[Any, Any, Any]) -> object:
    """The request body as Litestar decoded it for the handler, or None when it was not decoded (it is
    kept in the request's private connection state; decoding again would repeat the work)."""
    decoded: object = getattr(getattr(request, "_connection_state", None), "json", Empty)
    return None if decoded is Empty else decoded


def received_body(request: Request[Any, Any, Any]) -> bytes | None:
    """The request body Litestar read for the handler, or None when it was not read (kept in the request's
    private connection state, as the decoded body is)."""
    body: object = getattr(getattr(request, "_connection_state", None), "body", Empty)
    return body if isinstance(body, bytes) else None


def raised_while_decoding_json(exc: BaseException) -> bool:
    """True when `exc` came out of Litestar decoding a JSON body (not out of the service's own code)."""
    trace = exc.__traceback__
    while trace is not None:
        if trace.tb_frame.f_code.co_name == _DECODE_FRAME:
            return True
        trace = trace.tb_next
    return False


class _InTaskStreamingResponse(ASGIStreamingResponse):
    __slots__ = ()

    async def send_body(self, send: Send, receive: Receive) -> None:
        async for chunk in self.iterator:  # bytes: the platform's producers encode every chunk
            body = chunk if isinstance(chunk, bytes) else chunk.encode()
            await send({"type": "http.response.body", "body": body, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})


def streamed_in_request_task(response: ASGIResponse) -> ASGIResponse:
    """Litestar's response for a `Stream`, changed to send its chunks from the request's own task (Litestar
    sends them from a task group next to a disconnect listener of its own; the platform listens itself and
    cancels the request task). TypeError for any other response."""
    if type(response) is not ASGIStreamingResponse:
        raise TypeError(f"expected Litestar's ASGIStreamingResponse, got {type(response).__name__}")
    response.__class__ = _InTaskStreamingResponse
    return response


# --- uvicorn --------------------------------------------------------------------------------------------


def uvicorn_seconds(seconds: float) -> int:
    """A timeout for uvicorn.Config: typed `int` there, used as seconds (loop.call_later, asyncio.wait_for),
    so a fraction such as 0.5 works."""
    return cast("int", seconds)


UvicornServer = uvicorn.Server
# the methods of uvicorn.Server that nexus_platform._server.drain overrides (uvicorn calls them; none is documented)
SERVER_HOOKS = ("startup", "shutdown", "handle_exit", "on_tick")


class Connection(Protocol):
    def shutdown(self) -> None:
        """Close the connection: at once when idle, else once its response is out."""


def open_connections(server: UvicornServer) -> list[Connection]:
    """The server's open connections, at the time of the call."""
    return list(server.server_state.connections)


def request_tasks(server: UvicornServer) -> set[asyncio.Task[None]]:
    """The tasks running the server's requests."""
    return server.server_state.tasks


def listening_servers(server: UvicornServer) -> list[asyncio.Server]:
    """The listening sockets' servers (after startup)."""
    servers: list[asyncio.Server] = server.servers
    return servers


async def shut_down_lifespan(server: UvicornServer) -> None:
    """Run the app's lifespan shutdown, as uvicorn's own shutdown ends with."""
    await server.lifespan.shutdown()


UvicornHttpProtocol = HttpToolsProtocol
# the methods of uvicorn's httptools protocol that nexus_platform._server.protocol overrides, calling uvicorn's own
PROTOCOL_HOOKS = (
    "connection_made",
    "connection_lost",
    "data_received",
    "on_message_begin",
    "on_headers_complete",
    "on_message_complete",
    "on_response_complete",
)


def request_cycle(protocol: UvicornHttpProtocol) -> RequestResponseCycle | None:
    """The request being read or answered on the connection; None before the first one (uvicorn types it
    as always set)."""
    cycle: RequestResponseCycle | None = protocol.cycle
    return cycle


def arm_keep_alive_timer(protocol: UvicornHttpProtocol) -> None:
    """Start uvicorn's keep-alive timer (it closes the connection after `timeout_keep_alive` seconds, and
    uvicorn cancels it when a request begins)."""
    protocol.timeout_keep_alive_task = protocol.loop.call_later(
        protocol.timeout_keep_alive, protocol.timeout_keep_alive_handler
    )


def keep_alive_timer_armed(protocol: UvicornHttpProtocol) -> bool:
    return protocol.timeout_keep_alive_task is not None


def cancel_keep_alive_timer(protocol: UvicornHttpProtocol) -> None:
    if protocol.timeout_keep_alive_task is not None:
        protocol.timeout_keep_alive_task.cancel()
        protocol.timeout_keep_alive_task = None
