"""A handler that takes a JSON body answers 415 to a request whose body is something else, and 400 to a
body that only lenient decoding would accept (nexus_platform/_config/validation.py).

Litestar parses a JSON body whatever its Content-Type says; a client that sends text/plain or a form by
mistake should hear so. Handlers with other bodies (multipart uploads, raw audio) are not affected.
This is a `before_request` hook, not a guard: Litestar copies the handler for every guard call.
"""

from typing import Any

from litestar import Request
from litestar.enums import RequestEncodingType
from litestar.exceptions import HTTPException
from litestar.handlers import BaseRouteHandler

from nexus_platform._config.validation import require_strict_body

_JSON_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_OPT_KEY = "nexus_takes_json_body"


def _takes_json(handler: BaseRouteHandler) -> bool:
    """Whether the handler reads a JSON body; remembered in the handler's `opt`."""
    if _OPT_KEY not in handler.opt:
        data = handler.parsed_fn_signature.parameters.get("data")
        media_type = getattr(getattr(data, "kwarg_definition", None), "media_type", RequestEncodingType.JSON)
        handler.opt[_OPT_KEY] = data is not None and media_type == RequestEncodingType.JSON
    takes_json: bool = handler.opt[_OPT_KEY]
    return takes_json


async def check_json_body(request: Request[Any, Any, Any]) -> None:
    """before_request hook: 415 unless the body of a JSON handler is declared application/json (or +json);
    then 400 unless it decodes strictly."""
    if request.scope["method"] not in _JSON_BODY_METHODS or not _takes_json(request.route_handler):
        return
    content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if content_type != "application/json" and not content_type.endswith("+json"):
        raise HTTPException(
            status_code=415,
            detail=f"Content-Type must be application/json (got {content_type[:100] or 'none'!r})",
        )
    await require_strict_body(request)
