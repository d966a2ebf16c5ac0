# Managed by nexus-template: `copier update` replaces this file. Your code belongs in app/service.py.
"""A handler that takes a JSON body answers 415 to a request whose body is something else.

Litestar parses a JSON body whatever its Content-Type says; a client that sends text/plain or a form by
mistake should hear so. Handlers with other bodies (multipart uploads, raw audio) are not affected.
"""

from litestar.connection import ASGIConnection
from litestar.enums import RequestEncodingType
from litestar.exceptions import HTTPException
from litestar.handlers import BaseRouteHandler

_JSON_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_takes_json: dict[int, bool] = {}


def _handler_takes_json(handler: BaseRouteHandler) -> bool:
    key = id(handler)
    if key not in _takes_json:
        data = handler.parsed_fn_signature.parameters.get("data")
        media_type = getattr(getattr(data, "kwarg_definition", None), "media_type", RequestEncodingType.JSON)
        _takes_json[key] = data is not None and media_type == RequestEncodingType.JSON
    return _takes_json[key]


def require_json_content_type(connection: ASGIConnection, handler: BaseRouteHandler) -> None:
    """Litestar guard: 415 unless the body of a JSON handler is declared application/json (or +json)."""
    if connection.scope["method"] not in _JSON_BODY_METHODS or not _handler_takes_json(handler):
        return
    content_type = connection.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if content_type != "application/json" and not content_type.endswith("+json"):
        raise HTTPException(
            status_code=415,
            detail=f"Content-Type must be application/json (got {content_type[:100] or 'none'!r})",
        )
