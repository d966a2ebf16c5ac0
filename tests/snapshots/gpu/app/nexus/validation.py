# Managed by nexus-template: `copier update` replaces this file. Your code belongs in app/service.py.
"""Every invalid field of a msgspec struct at once (msgspec itself stops at the first).

Used for request bodies (each error becomes an OpenAI `param`) and for settings (each names a variable).
"""

from collections.abc import Mapping
from typing import Any

import msgspec


class FieldError(msgspec.Struct, frozen=True):
    field: str
    message: str


def _located(name: str, error: msgspec.ValidationError) -> FieldError:
    """'Expected `int` >= 1 - at `$[2]`' for field `x` -> FieldError('x[2]', 'expected `int` >= 1')."""
    text, _, where = str(error).partition(" - at `$")
    return FieldError(name + where.rstrip("`"), text[:1].lower() + text[1:])


def field_errors(
    struct_type: type[msgspec.Struct], raw: Mapping[str, Any], *, strict: bool
) -> list[FieldError]:
    """Check each field of `raw` against `struct_type` on its own; unknown and missing fields included."""
    errors: list[FieldError] = []
    fields = msgspec.structs.fields(struct_type)
    known = {field.encode_name for field in fields}
    for field in fields:
        if field.encode_name not in raw:
            if field.required:
                errors.append(FieldError(field.encode_name, "is required"))
            continue
        try:
            msgspec.convert(raw[field.encode_name], type=field.type, strict=strict)
        except msgspec.ValidationError as error:
            errors.append(_located(field.encode_name, error))
    if struct_type.__struct_config__.forbid_unknown_fields:
        errors.extend(FieldError(name, "is not a known field") for name in raw if name not in known)
    return errors
