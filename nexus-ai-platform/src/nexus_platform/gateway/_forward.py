"""Forwarding one request to an instance, with the gateway's failover: the only module that speaks HTTP to
the upstreams (for their answers; the routing table reads their metadata with httpx, nexus_platform's client).

- The body goes as received; the caller's `content-type` and `accept` go with it, the gateway's service key
  (GATEWAY_SERVICE_API_KEY) replaces the client's, and the request id and trace context travel along.
- One aiohttp session per gateway, as the wrapper's proxy path has (its pool hands out a connection in
  constant time, where httpcore's scans every pooled connection twice per request: docs/performance.md):
  GATEWAY_MAX_CONNECTIONS, idle connections retired after BACKEND_KEEPALIVE_SECONDS,
  GATEWAY_CONNECT_TIMEOUT_SECONDS to connect, BACKEND_TIMEOUT_SECONDS per read. aiohttp itself sends an
  idempotent request (GET, PUT, DELETE) once more when its connection drops before an answer; this module
  decides everything else.
- A POST or PATCH whose pooled, reused connection the instance closed before answering (its keep-alive ran
  out as the request went out, as with aiohttp's own retry) is no failure of the instance: it goes once
  more, on another connection. On a new connection, the same is a failure (the instance may have died of it).
- A refused connection, a connect timeout, a connection that broke before the answer was read, and a 503
  cool the instance down (GATEWAY_COOLDOWN_SECONDS) and, while nothing reached the client, the request is
  tried once more on another instance. A non-streamed answer (with a Content-Length up to
  BACKEND_MAX_RESPONSE_BYTES) is read whole before anything is sent, so an instance that dies while
  answering is retried too; a stream (SSE, chunked bytes) passes chunk by chunk and is never retried once
  it began. The last attempt's status, body, `retry-after` and `x-should-retry` reach the client, with
  `x-nexus-instance` (<service>/<instance id> that answered) and `x-nexus-attempts`.
- An upstream stream that breaks off ends the client's event stream with an error event (a byte stream
  is cut, as the platform's byte streams are); a client that goes away closes the upstream request.
"""

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from types import SimpleNamespace
from typing import Any

import aiohttp
import msgspec
from litestar import Request, Response

from nexus_platform._config.settings import PlatformSettings
from nexus_platform._http.errors import ServiceError, error_body
from nexus_platform._http.streaming import EVENT_STREAM, byte_stream
from nexus_platform._observability.correlation import HEADER, current_request_id
from nexus_platform._observability.tracing import outgoing_traceparent, trace_var
from nexus_platform.gateway._balance import pick
from nexus_platform.gateway._metrics import GatewayMetrics
from nexus_platform.gateway._settings import GatewaySettings
from nexus_platform.gateway._table import Instance

__all__ = ["Forwarder"]

# the request headers that travel with the body (the client's key does not: the gateway uses its own)
_REQUEST_HEADERS = ("content-type", "accept")
# the answer headers the client gets (length and framing are the gateway's own)
_ANSWER_HEADERS = ("content-type", "retry-after", "x-should-retry", "location")
# an answer that is retried elsewhere is read this far (its message), then dropped
_ERROR_BYTES = 64 << 10
_ATTEMPTS = 2


class _Usage(msgspec.Struct):
    prompt_tokens: int = 0
    completion_tokens: int = 0


class _Answer(msgspec.Struct):
    usage: _Usage | None = None


_usage = msgspec.json.Decoder(_Answer)
# a stream's last bytes kept for its usage event (OpenAI's: last before [DONE], when the client asked for
# it with stream_options.include_usage; a few hundred bytes)
_USAGE_WINDOW = 4096


def _streamed_usage(window: bytes) -> _Usage | None:
    """The usage of the last data line in `window` that names one, if it is whole and not null."""
    for line in reversed(window.splitlines()):
        if line.startswith(b"data:") and b'"usage"' in line:
            try:
                return _usage.decode(line[5:]).usage
            except msgspec.DecodeError:  # cut by the window's start, or not JSON
                return None
    return None


# aiohttp sends these once more itself when the connection drops (RFC 9112's idempotent methods)
_RETRIED_BY_AIOHTTP = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})


class _Sent:
    """What aiohttp's tracing tells of one request: whether it went out on a pooled connection."""

    reused = False


async def _reused(
    _session: aiohttp.ClientSession, context: SimpleNamespace, _params: aiohttp.TraceConnectionReuseconnParams
) -> None:
    if isinstance(sent := context.trace_request_ctx, _Sent):
        sent.reused = True


_REUSE = aiohttp.TraceConfig()
_REUSE.on_connection_reuseconn.append(_reused)


def _unavailable(why: str) -> ServiceError:
    error = ServiceError(503, "upstream_unavailable", why)
    error.headers = {"retry-after": "1", "x-should-retry": "true"}
    return error


class Forwarder:
    def __init__(
        self, platform: PlatformSettings, settings: GatewaySettings, metrics: GatewayMetrics
    ) -> None:
        self.http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                limit=settings.gateway_max_connections,
                limit_per_host=0,
                keepalive_timeout=platform.backend_keepalive_seconds,
            ),
            # connecting (the TCP handshake, not the wait for a pooled connection) and each read (the
            # status line, every chunk); no bound on a whole answer: a stream's are the platform's
            timeout=aiohttp.ClientTimeout(
                total=None,
                sock_connect=settings.gateway_connect_timeout_seconds,
                sock_read=platform.backend_timeout_seconds,
            ),
            # the answer passes through as the instance sent it, never inflated here
            auto_decompress=False,
            # an instance's cookies are not the next caller's
            cookie_jar=aiohttp.DummyCookieJar(),
            trace_configs=[_REUSE],
        )
        self._key = settings.gateway_service_api_key
        self._cooldown = settings.gateway_cooldown_seconds
        self._max_bytes = platform.backend_max_response_bytes
        self._metrics = metrics

    async def aclose(self) -> None:
        await self.http.close()

    def _headers(self, request: Request[Any, Any, Any]) -> dict[str, str]:
        # identity: the answer passes through as the instance sent it, never inflated here
        headers = {name: value for name in _REQUEST_HEADERS if (value := request.headers.get(name))}
        headers["accept-encoding"] = "identity"
        if self._key:
            headers["authorization"] = f"Bearer {self._key}"
        # the request id and trace context travel with the request, as on every call of the platform
        headers[HEADER.decode()] = current_request_id()
        if (trace := trace_var.get()) is not None:
            headers["traceparent"] = outgoing_traceparent(trace)
        return headers

    def _cool(self, instance: Instance) -> None:
        instance.cool_until = time.monotonic() + self._cooldown

    async def forward(
        self,
        request: Request[Any, Any, Any],
        candidates: Sequence[Instance],
        path: str,
        body: bytes,
        model: str = "",
    ) -> Response[Any]:
        """The answer of one of `candidates` to `request` (its method, `path` with the query, `body`)."""
        started = time.perf_counter()
        outgoing = (request.method, path, body, self._headers(request))
        failure = _unavailable("No instance can take the request now")
        tried: Instance | None = None
        attempts = 0
        while attempts < _ATTEMPTS and (instance := pick(candidates, tried)) is not None:
            tried, attempts = instance, attempts + 1
            # the last try passes a 503 on; an earlier one leaves it for another instance
            last = attempts == _ATTEMPTS or pick(candidates, instance) is None
            outcome = await self._try(instance, outgoing, model, attempts, last=last, started=started)
            if isinstance(outcome, Response):
                return outcome
            failure = outcome
        if tried is not None:
            self._metrics.finished(
                tried.name, tried.label, model, "unavailable", time.perf_counter() - started
            )
        failure.headers = {**(failure.headers or {}), "x-nexus-attempts": str(attempts)}
        raise failure

    async def _request(
        self, method: str, url: str, body: bytes, headers: dict[str, str]
    ) -> aiohttp.ClientResponse:
        """The instance's answer, sent once more where a reused connection was closed under it (above)."""
        sent = _Sent()
        try:
            return await self.http.request(
                method, url, data=body, headers=headers, allow_redirects=False, trace_request_ctx=sent
            )
        except aiohttp.ServerDisconnectedError:
            if not sent.reused or method in _RETRIED_BY_AIOHTTP:
                raise
            return await self.http.request(method, url, data=body, headers=headers, allow_redirects=False)

    async def _try(
        self,
        instance: Instance,
        outgoing: tuple[str, str, bytes, dict[str, str]],
        model: str,
        attempt: int,
        *,
        last: bool,
        started: float,
    ) -> Response[Any] | ServiceError:
        """One instance's answer, or the error to answer if no other instance does better."""
        method, path, body, headers = outgoing
        labels = (instance.name, instance.label, model)
        instance.outstanding += 1
        try:
            # a redirect is the client's to follow (never the gateway's: it would fetch wherever it points,
            # with the gateway's key, from inside the platform's network)
            answer = await self._request(method, instance.base_url + path, body, headers)
        except asyncio.CancelledError:  # the client went away, or a time limit: the slot is free again
            instance.outstanding -= 1
            raise
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as error:
            instance.outstanding -= 1
            self._cool(instance)
            self._metrics.attempt(*labels, "refused")
            return _unavailable(f"Cannot reach {instance.label} ({type(error).__name__})")
        except TimeoutError:  # no status line in time: it may still work on it, another would double the cost
            instance.outstanding -= 1
            self._metrics.attempt(*labels, "failed")
            self._metrics.finished(*labels, "unavailable", time.perf_counter() - started)
            timeout = ServiceError(504, "upstream_timeout", f"{instance.label} did not answer in time")
            timeout.headers = {"x-should-retry": "false", "x-nexus-instance": instance.label}
            timeout.headers["x-nexus-attempts"] = str(attempt)
            raise timeout from None
        except aiohttp.ClientError as error:  # closed before answering (it died, or closed a keep-alive)
            instance.outstanding -= 1
            self._cool(instance)
            self._metrics.attempt(*labels, "failed")
            return _unavailable(f"{instance.label} failed before answering ({type(error).__name__})")
        if answer.status == 503:
            self._cool(instance)
            if not last:
                try:
                    await _drop(answer)
                finally:
                    instance.outstanding -= 1
                self._metrics.attempt(*labels, "unavailable")
                return _unavailable(f"{instance.label} answered 503")
        self._metrics.attempt(*labels, "answered")
        return await self._answered(answer, instance, model, attempt, started)

    async def _answered(
        self, answer: aiohttp.ClientResponse, instance: Instance, model: str, attempt: int, started: float
    ) -> Response[Any] | ServiceError:
        """The response that passes `answer` on: read whole first when it is short, else relayed."""
        reply = {name: value for name in _ANSWER_HEADERS if (value := answer.headers.get(name))}
        reply |= {"x-nexus-instance": instance.label, "x-nexus-attempts": str(attempt)}
        media_type = reply.pop("content-type", "application/json")
        length = answer.content_length
        if media_type.startswith(EVENT_STREAM) or length is None or length > self._max_bytes:
            return self._relay(answer, instance, model, media_type, reply, started)
        try:
            content = await answer.read()
        except (aiohttp.ClientError, TimeoutError) as error:  # it died while answering: nothing sent yet
            self._cool(instance)
            return _unavailable(f"{instance.label} broke off its answer ({type(error).__name__})")
        finally:
            answer.release()  # read whole: the connection goes back to the pool (else it is closed)
            instance.outstanding -= 1
        self._done(instance, model, answer.status, content, started)
        return Response(content, status_code=answer.status, media_type=media_type, headers=reply)

    def _done(self, instance: Instance, model: str, status: int, content: bytes, started: float) -> None:
        seconds = time.perf_counter() - started
        outcome = "ok" if status < 400 else "client_error" if status < 500 else "upstream_error"
        self._metrics.first_byte(instance.name, instance.label, model, seconds)
        self._metrics.finished(instance.name, instance.label, model, outcome, seconds)
        if status == 200 and b'"usage"' in content:
            try:
                usage = _usage.decode(content).usage
            except msgspec.DecodeError:
                usage = None
            if usage is not None:
                self._metrics.used(instance.name, model, usage.prompt_tokens, usage.completion_tokens)

    def _relay(
        self,
        answer: aiohttp.ClientResponse,
        instance: Instance,
        model: str,
        media_type: str,
        headers: dict[str, str],
        started: float,
    ) -> Response[Any]:
        events = media_type.startswith(EVENT_STREAM)
        metrics, labels = self._metrics, (instance.name, instance.label, model)

        async def chunks() -> AsyncIterator[bytes]:
            outcome, window, first = "broken", b"\n\n", True
            try:
                async for chunk in answer.content.iter_any():
                    if first:
                        metrics.first_byte(*labels, time.perf_counter() - started)
                        first = False
                    if events:
                        window = (window + chunk[-_USAGE_WINDOW:])[-_USAGE_WINDOW:]
                    yield chunk
                outcome = "ok" if answer.status < 400 else "upstream_error"
                if events and answer.status == 200 and (usage := _streamed_usage(window)) is not None:
                    metrics.used(instance.name, model, usage.prompt_tokens, usage.completion_tokens)
            except (aiohttp.ClientError, TimeoutError) as error:
                message = f"The stream of {instance.label} broke off ({type(error).__name__})"
                if not events:
                    raise ServiceError(502, "upstream_error", message) from None
                separator = b"" if window.endswith(b"\n\n") else b"\n\n"  # ends the event it cut, if any
                yield separator + b"data: " + error_body(502, message, code="upstream_error") + b"\n\n"
            finally:  # also when the client went away: the upstream request is closed with it
                if outcome == "broken":
                    answer.close()
                else:
                    answer.release()
                instance.outstanding -= 1
                metrics.finished(*labels, outcome, time.perf_counter() - started)

        response = byte_stream(chunks(), media_type, headers=headers)
        response.status_code = answer.status
        return response


async def _drop(answer: aiohttp.ClientResponse) -> None:
    """Close an answer that is not passed on; a short one is read first, so its connection stays pooled."""
    length = answer.content_length
    try:
        if length is not None and length <= _ERROR_BYTES:
            await answer.read()
    except (aiohttp.ClientError, TimeoutError):
        answer.close()
    finally:
        answer.release()
