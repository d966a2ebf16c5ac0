"""The OpenAPI document tells the truth about errors and bodies.

Every operation lists the statuses the platform can answer with, each with the OpenAI error body (Litestar
would document its own error shape instead), and a request struct that forbids unknown fields says so
(`additionalProperties: false`), so that generic clients and fuzzers know what the service accepts.
"""

import typing
from collections.abc import Iterator

import msgspec
from litestar import Litestar
from litestar.openapi.spec import (
    Components,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Reference,
    Schema,
    SecurityScheme,
)
from litestar.routes import HTTPRoute

ERROR_SCHEMA = "OpenAIError"
SECURITY_SCHEME = "apiKey"
_OPEN_PROBES = frozenset({"/health", "/readyz"})
_SECURED = {
    401: "Missing or invalid API key (Authorization: Bearer <key>)",
    403: "The service refuses this key on this route",
}
_PLATFORM_PATHS = frozenset({"/health", "/readyz", "/v1/metadata", "/v1/models"})
_ANY_REQUEST = {
    400: "No Host header, two, or one that ALLOWED_HOSTS does not list",
    408: "Request line and headers slower than HEADER_TIMEOUT_SECONDS",
    431: "Request line and headers larger than MAX_HEADER_BYTES",
    500: "Unexpected failure (details only in the log)",
}
_WITH_INPUT = {400: "Malformed or invalid request, or a Host that is not served"}
_WITH_BODY = {
    408: "Headers slower than HEADER_TIMEOUT_SECONDS, or a body behind MIN_BODY_BYTES_PER_SECOND",
    413: "Request body larger than MAX_BODY_BYTES",
    415: "Content-Type is not application/json",
}
_LIMITED = {
    503: "Over MAX_CONCURRENT_REQUESTS (retry after Retry-After seconds)",
    504: "Ran past REQUEST_TIMEOUT_SECONDS and was cancelled",
}


def _nullable_string() -> Schema:
    return Schema(one_of=[Schema(type=OpenAPIType.STRING), Schema(type=OpenAPIType.NULL)])


def _error_schema() -> Schema:
    detail = Schema(
        type=OpenAPIType.OBJECT,
        required=["message", "type", "param", "code"],
        properties={
            "message": Schema(type=OpenAPIType.STRING),
            "type": Schema(type=OpenAPIType.STRING),
            "param": _nullable_string(),
            "code": _nullable_string(),
        },
    )
    return Schema(
        type=OpenAPIType.OBJECT, required=["error"], properties={"error": detail}, title="OpenAI error"
    )


def _structs(annotation: object, seen: set[type[msgspec.Struct]]) -> Iterator[type[msgspec.Struct]]:
    """msgspec structs in an annotation, nested ones included."""
    if isinstance(annotation, type) and issubclass(annotation, msgspec.Struct):
        if annotation in seen:
            return
        seen.add(annotation)
        yield annotation
        for field in msgspec.structs.fields(annotation):
            yield from _structs(field.type, seen)
    for argument in typing.get_args(annotation):
        yield from _structs(argument, seen)


def _closed_request_structs(app: Litestar) -> set[str]:
    """Names of the request-body structs that reject unknown fields."""
    seen: set[type[msgspec.Struct]] = set()
    for route in app.routes:
        for handler in route.route_handlers if isinstance(route, HTTPRoute) else ():
            data = handler.parsed_fn_signature.parameters.get("data")
            if data is not None:
                list(_structs(data.annotation, seen))
    return {struct.__name__ for struct in seen if struct.__struct_config__.forbid_unknown_fields}


def document_api(app: Litestar, *, secured: bool) -> None:
    """Rewrite the error responses and closed request bodies of `app.openapi_schema` (once, at start-up);
    `secured`: API_KEYS is set, and every operation but the probes takes a bearer key."""
    document = app.openapi_schema
    if document.components is None:
        document.components = Components()
    if secured:
        document.components.security_schemes = {
            **(document.components.security_schemes or {}),
            SECURITY_SCHEME: SecurityScheme(type="http", scheme="bearer", description="A key of API_KEYS"),
        }
    document.components.schemas = {**(document.components.schemas or {}), ERROR_SCHEMA: _error_schema()}
    for name in _closed_request_structs(app) & set(document.components.schemas):
        document.components.schemas[name].additional_properties = False
    error = OpenAPIMediaType(schema=Reference(f"#/components/schemas/{ERROR_SCHEMA}"))
    for path, item in (document.paths or {}).items():
        for method in ("get", "put", "post", "delete", "patch"):
            operation = getattr(item, method)
            if operation is None:
                continue
            responses = operation.responses or {}
            statuses = dict(_ANY_REQUEST)
            if operation.parameters or operation.request_body:
                statuses |= _WITH_INPUT
            if operation.request_body:
                statuses |= _WITH_BODY
            if path not in _PLATFORM_PATHS:
                statuses |= _LIMITED
            if secured and path not in _OPEN_PROBES:
                statuses |= _SECURED
                operation.security = [{SECURITY_SCHEME: []}]
            for status, description in statuses.items():
                if str(status) in responses and path in _PLATFORM_PATHS:
                    continue  # e.g. /readyz documents its own 503 body
                responses[str(status)] = OpenAPIResponse(
                    description=description, content={"application/json": error}
                )
            operation.responses = responses
