"""Every error answers with the OpenAI error body: {"error": {"message", "type", "param", "code"}}.

Raise litestar.exceptions.HTTPException subclasses (NotFoundException, ClientException, ...) or
`ServiceError` from your handlers; anything else becomes a 500 whose details go to the log only.
"""

import logging
import re
from http import HTTPStatus
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, SerializationException, ValidationException
from litestar.types import ExceptionHandlersMap

from nexus_platform._compat import decoded_json_body, raised_while_decoding_json, received_body
from nexus_platform._config.validation import field_errors
from nexus_platform._http.encoded import encoded_response
from nexus_platform._http.exchange import current_exchange

logger = logging.getLogger("nexus.errors")

JSON = "application/json"
# on 500 and 504: the same request would fail (and cost) the same again; the OpenAI SDK obeys it
NO_RETRY = (b"x-should-retry", b"false")

# OpenAI's `type` for each status; the official SDK maps statuses to its exception classes.
_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    408: "timeout_error",
    409: "conflict_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    431: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    503: "service_unavailable_error",
    504: "timeout_error",
}


# An error lists at most this many problems, each clipped: a body of a million unknown keys gets an answer
# of a few KiB, not megabytes.
_MAX_PROBLEMS = 20
_MAX_TEXT = 120


def _clipped(text: str) -> str:
    return text if len(text) <= _MAX_TEXT else text[: _MAX_TEXT - 1] + "…"


class ErrorDetail(msgspec.Struct):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorBody(msgspec.Struct):
    error: ErrorDetail


class ServiceError(HTTPException):
    """An error with an explicit OpenAI `code` and `param`, e.g. ServiceError(404, "model_not_found", ...);
    `type_`: OpenAI's `type` when it is not the status's own (a backend's error, passed through)."""

    def __init__(
        self, status_code: int, code: str, message: str, *, param: str | None = None, type_: str | None = None
    ) -> None:
        super().__init__(detail=message, status_code=status_code)
        self.code = code
        self.param = param
        self.type_ = type_


def error_type(status_code: int) -> str:
    return _TYPES.get(status_code, "server_error" if status_code >= 500 else "invalid_request_error")


def error_body(
    status_code: int,
    message: str,
    *,
    code: str | None = None,
    param: str | None = None,
    type_: str | None = None,
) -> bytes:
    detail = ErrorDetail(message=message, type=type_ or error_type(status_code), param=param, code=code)
    return msgspec.json.encode(ErrorBody(detail))


def _default_code(status_code: int) -> str:
    return HTTPStatus(status_code).phrase.lower().replace(" ", "_").replace("-", "_")


def error_response(
    status_code: int,
    message: str,
    *,
    code: str | None = None,
    param: str | None = None,
    headers: dict[str, str] | None = None,
    type_: str | None = None,
) -> Response[ErrorBody]:
    return encoded_response(
        error_body(status_code, message, code=code or _default_code(status_code), param=param, type_=type_),
        ErrorBody,
        status_code=status_code,
        media_type=JSON,
        headers=headers,
    )


def _body_errors(request: Request[Any, Any, Any]) -> list[tuple[str, str]]:
    """Every invalid field when the body was a JSON object for a msgspec struct, else []."""
    data_field = request.route_handler.parsed_fn_signature.parameters.get("data")
    raw = decoded_json_body(request)
    target = getattr(data_field, "annotation", None)
    if isinstance(raw, dict) and isinstance(target, type) and issubclass(target, msgspec.Struct):
        errors = field_errors(target, raw, strict=True, limit=_MAX_PROBLEMS + 1)
        return [(error.field, error.message) for error in errors]
    return []


def _validation_problems(request: Request[Any, Any, Any], exc: ValidationException) -> list[tuple[str, str]]:
    """(param, message) pairs. Litestar reports only the first invalid body field; find them all."""
    items = [item for item in exc.extra if isinstance(item, dict)] if isinstance(exc.extra, list) else []
    pairs = [(str(item.get("key", "")), str(item.get("message", "is invalid"))) for item in items]
    elsewhere = [pair for item, pair in zip(items, pairs, strict=True) if item.get("source") != "body"]
    in_body = [pair for item, pair in zip(items, pairs, strict=True) if item.get("source") == "body"]
    return elsewhere + ((_body_errors(request) or in_body) if in_body else [])


def _on_validation_error(request: Request[Any, Any, Any], exc: ValidationException) -> Response[ErrorBody]:
    problems = _validation_problems(request, exc)
    if not problems:
        message = exc.detail if "JSON" in exc.detail else "The request is invalid"
        return error_response(400, message, code="invalid_request")
    if [param for param, _ in problems] == ["data"]:  # the body as a whole: missing, or not an object
        return error_response(400, "The request body must be a JSON object", code="invalid_request")
    listed = [(_clipped(param), _clipped(text)) for param, text in problems[:_MAX_PROBLEMS]]
    message = "Invalid request: " + "; ".join(f"`{param}` {text}" for param, text in listed)
    if len(problems) > _MAX_PROBLEMS:
        message += f"; and more (the first {_MAX_PROBLEMS} are listed)"
    return error_response(400, message, code="invalid_value", param=listed[0][0])


def _client_gone() -> bool:
    """The client disconnected while its request ran (the access line says 499)."""
    exchange = current_exchange()
    return exchange is not None and exchange.outcome == "client_disconnected"


def _malformed_json(request: Request[Any, Any, Any], reason: str) -> Response[ErrorBody]:
    """400 invalid_json saying where decoding failed: msgspec names the byte of a malformed body; a
    truncated one failed at its end."""
    body = received_body(request) or b""
    found = re.search(r"\s*\(byte (\d+)\)$", reason)
    offset = int(found.group(1)) if found else len(body)
    reason = reason[: found.start()] if found else reason
    line = body.count(b"\n", 0, offset) + 1
    column = offset - (body.rfind(b"\n", 0, offset) + 1) + 1
    message = f"The request body is not valid JSON: {_clipped(reason)} at line {line}, column {column} (byte {offset})"
    return error_response(400, message, code="invalid_json")


def _on_http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[ErrorBody]:
    status = exc.status_code
    if status == 400 and isinstance(exc.__cause__, SerializationException):
        return _malformed_json(request, str(exc.detail))
    if isinstance(exc, ServiceError):
        message = exc.detail
    elif status == 404:
        message = f"Unknown path: {request.method} {request.url.path[:200]}"
    elif status == 405:
        message = f"Method {request.method} is not allowed on {request.url.path[:200]}"
    elif status == 413:
        message = "The request body is larger than this service accepts (MAX_BODY_BYTES)"
    else:
        message = exc.detail or HTTPStatus(status).phrase
    if status >= 500 and _client_gone():
        # not a server error: nobody is left to answer (the access line says 499)
        logger.info("the client disconnected before its request was read")
    elif status >= 500 and not isinstance(exc, ServiceError):
        logger.error("request failed with %s", status, exc_info=exc)
    return error_response(
        status,
        message,
        code=getattr(exc, "code", None),
        param=getattr(exc, "param", None),
        headers=exc.headers,
        type_=getattr(exc, "type_", None),
    )


def _on_unexpected_error(request: Request[Any, Any, Any], exc: Exception) -> Response[ErrorBody]:
    if isinstance(exc, RecursionError) and raised_while_decoding_json(exc):
        return error_response(400, "The JSON body is nested too deeply", code="invalid_json")
    if isinstance(exc, UnicodeDecodeError) and raised_while_decoding_json(exc):
        return error_response(400, "The request body is not valid UTF-8", code="invalid_json")
    logger.exception("unhandled error in %s %s", request.method, request.url.path)
    return error_response(500, "The service failed to handle this request", code="internal_error")


EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    ValidationException: _on_validation_error,
    HTTPException: _on_http_error,
    Exception: _on_unexpected_error,
}
