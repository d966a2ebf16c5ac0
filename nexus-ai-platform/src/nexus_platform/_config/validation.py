"""Every invalid field of a msgspec struct at once (msgspec itself stops at the first), and strict bodies.

Used for request bodies (each error becomes an OpenAI `param`) and for settings (each names a variable).
A JSON body typed as a msgspec struct is decoded strictly: `"2"` is not an integer nor `"true"` a boolean
(Litestar converts leniently, as it must for query strings). A number with no fractional part (`2.0`) is
an integer, as in JSON Schema, which the OpenAPI document speaks.
"""

from collections.abc import Iterator, Mapping
from itertools import islice
from typing import Any

import msgspec
from litestar import Request
from litestar.exceptions import SerializationException, ValidationException
from litestar.handlers import BaseRouteHandler

__all__ = ["FieldError", "field_errors", "require_strict_body"]

_OPT_KEY = "nexus_strict_body_type"


class FieldError(msgspec.Struct, frozen=True):
    field: str
    message: str


def _located(name: str, error: msgspec.ValidationError) -> FieldError:
    """'Expected `int` >= 1 - at `$[2]`' for field `x` -> FieldError('x[2]', 'expected `int` >= 1')."""
    text, _, where = str(error).partition(" - at `$")
    return FieldError(name + where.rstrip("`"), text[:1].lower() + text[1:])


def _integral_floats_as_ints(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: _integral_floats_as_ints(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_integral_floats_as_ints(item) for item in value]
    return value


def _convert(value: Any, target: Any, *, strict: bool) -> None:
    """Raise msgspec.ValidationError unless `value` converts to `target`."""
    try:
        msgspec.convert(value, target, strict=strict)
    except msgspec.ValidationError as error:
        if not strict or "got `float`" not in str(error):
            raise
        msgspec.convert(_integral_floats_as_ints(value), target, strict=True)  # the rare slow path


def _field_errors(
    struct_type: type[msgspec.Struct], raw: Mapping[str, Any], strict: bool
) -> Iterator[FieldError]:
    fields = msgspec.structs.fields(struct_type)
    known = {field.encode_name for field in fields}
    for field in fields:
        if field.encode_name not in raw:
            if field.required:
                yield FieldError(field.encode_name, "is required")
            continue
        try:
            _convert(raw[field.encode_name], field.type, strict=strict)
        except msgspec.ValidationError as error:
            yield _located(field.encode_name, error)
    if struct_type.__struct_config__.forbid_unknown_fields:
        yield from (FieldError(name, "is not a known field") for name in raw if name not in known)


def field_errors(
    struct_type: type[msgspec.Struct], raw: Mapping[str, Any], *, strict: bool, limit: int | None = None
) -> list[FieldError]:
    """Check each field of `raw` against `struct_type` on its own; unknown and missing fields included.
    With `limit`, stop after that many (a body of a million unknown keys costs no more than a few)."""
    return list(islice(_field_errors(struct_type, raw, strict), limit))


def _strict_body_type(handler: BaseRouteHandler) -> type[msgspec.Struct] | None:
    """The struct a handler's JSON body decodes to, or None; remembered in the handler's `opt`."""
    if _OPT_KEY not in handler.opt:
        data = handler.parsed_fn_signature.parameters.get("data")
        annotation = getattr(data, "annotation", None)
        is_struct = isinstance(annotation, type) and issubclass(annotation, msgspec.Struct)
        handler.opt[_OPT_KEY] = annotation if is_struct else None
    body_type: type[msgspec.Struct] | None = handler.opt[_OPT_KEY]
    return body_type


async def require_strict_body(request: Request[Any, Any, Any]) -> None:
    """before_request hook: a struct body that only lenient decoding would accept is a 400 (every
    invalid field is then reported by the error handler)."""
    struct_type = _strict_body_type(request.route_handler)
    if struct_type is None:
        return
    try:
        raw = await request.json()
    except SerializationException:
        return  # malformed JSON: the framework reports it when it reads the body for the handler
    if not isinstance(raw, dict):
        return  # the framework answers that the body must be a JSON object
    try:
        msgspec.convert(raw, struct_type, strict=True)  # the common case: valid, in microseconds
    except msgspec.ValidationError as error:
        # field by field: `2.0` for an integer is fine, and the cost stays with the fields the struct has
        if field_errors(struct_type, raw, strict=True, limit=1):
            raise ValidationException(
                extra=[{"key": "data", "message": str(error), "source": "body"}]
            ) from None
