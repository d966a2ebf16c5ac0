"""The gateway's routes: OpenAI requests by their body's `model`, a service's own routes under
/services/<name>/, and for operators the routing table (GET /v1/gateway/instances) and the gateway's
metrics (on the service's GET /metrics)."""

from typing import Any
from urllib.parse import quote, unquote

import msgspec
from litestar import Request, Response, get, post, route
from litestar.enums import HttpMethod

from nexus_platform._context import nexus_of
from nexus_platform._http.errors import ServiceError
from nexus_platform.gateway._gateway import Gateway
from nexus_platform.gateway._table import InstanceView

__all__ = ["OPENAI_PATHS", "ROUTES"]

# the OpenAI requests with a JSON body naming a `model` (what the platform's services serve, and the
# usual others of OpenAI-compatible servers)
OPENAI_PATHS = [
    "/v1/chat/completions",
    "/v1/completions",
    "/v1/embeddings",
    "/v1/audio/speech",
    "/v1/images/generations",
    "/v1/responses",
    "/v1/moderations",
]


class _Model(msgspec.Struct):
    """The one field the gateway reads of a body: the rest is skipped by the decoder, never built."""

    model: str | None = None


_model_of = msgspec.json.Decoder(_Model).decode


def _gateway(request: Request[Any, Any, Any]) -> Gateway:
    gateway: Gateway = nexus_of(request).state["gateway"]
    return gateway


def _target(request: Request[Any, Any, Any], path: str) -> str:
    query = request.scope.get("query_string", b"")
    return f"{path}?{query.decode('latin-1')}" if query else path


@post(
    OPENAI_PATHS,
    status_code=200,
    summary="Forwarded to an instance that serves the body's model",
    tags=["gateway"],
)
async def by_model(request: Request[Any, Any, Any]) -> Response[Any]:
    body = await request.body()
    try:
        model = _model_of(body).model
    except msgspec.ValidationError:  # JSON, but `model` is not a string (or the body not an object)
        raise ServiceError(
            400,
            "invalid_value",
            "The request body must be a JSON object whose `model` is a string",
            param="model",
        ) from None
    except msgspec.DecodeError:
        raise ServiceError(
            400, "invalid_json", "The request body must be a JSON object with a `model`"
        ) from None
    if not model:
        raise ServiceError(400, "invalid_request", "The request names no `model`", param="model")
    gateway = _gateway(request)
    candidates = gateway.table.by_model.get(model)
    if not candidates:
        raise ServiceError(
            404,
            "model_not_found",
            f"The model `{model[:200]}` does not exist or no ready service serves it",
            param="model",
        )
    return await gateway.forwarder.forward(
        request, candidates, _target(request, request.url.path), body, model
    )


@route(
    "/services/{name:str}/{path:path}",
    http_method=[HttpMethod.GET, HttpMethod.POST, HttpMethod.PUT, HttpMethod.PATCH, HttpMethod.DELETE],
    summary="Forwarded to an instance of the named service, the prefix removed",
    tags=["gateway"],
)
async def by_service(request: Request[Any, Any, Any]) -> Response[Any]:
    # read from the scope: the path is passed on as it is, never converted or documented as a parameter
    name = request.path_params["name"]
    gateway = _gateway(request)
    candidates = gateway.table.by_service.get(name)
    if not candidates:
        raise ServiceError(404, "service_not_found", f"No ready service is named `{name[:100]}`")
    body = await request.body()
    return await gateway.forwarder.forward(request, candidates, _target(request, _sent_path(request)), body)


def _sent_path(request: Request[Any, Any, Any]) -> str:
    """The path after /services/<name> as the client sent it, still percent-encoded: the decoded one would
    turn a %2F in a segment (a model id such as org%2Fmodel) into a separator, and a %3F into a query."""
    raw: bytes = request.scope.get("raw_path") or quote(request.scope["path"]).encode()
    # a test client's raw_path carries the query; a server's does not (ASGI)
    parts = raw.partition(b"?")[0].decode("latin-1").split("/", 3)
    # routed on the decoded path: an encoded / before the service's path makes the two disagree
    if len(parts) < 4 or [unquote(part) for part in parts[1:3]] != ["services", request.path_params["name"]]:
        raise ServiceError(400, "invalid_path", "`/services/<name>/` must not hold an encoded /")
    return "/" + parts[3]


@get("/v1/gateway/instances", summary="The gateway's routing table", tags=["gateway"])
async def instances(request: Request[Any, Any, Any]) -> list[InstanceView]:
    return _gateway(request).view()


ROUTES = [by_model, by_service, instances]
