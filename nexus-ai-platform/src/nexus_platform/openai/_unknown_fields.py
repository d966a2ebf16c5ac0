"""Request types that accept fields the platform does not know, for STRICT_OPENAI_FIELDS=false.

A wrapper's clients send their backend's own fields (Ollama's `options` and `keep_alive`, vLLM's `top_k`
and `repetition_penalty`): the wrapper validates the fields OpenAI defines and forwards the body as
received. The OpenAI types refuse unknown fields (a service's own implementation would silently ignore
them); `accepting_unknown_fields` derives, once per type, a subclass that accepts them at every level and
validates everything else the same way. A subclass: handlers and implementations see the types they
expect, methods included.
"""

import functools
import types
import typing
from typing import Annotated, Any, TypeVar, Union, get_args, get_origin

import msgspec

__all__ = ["accepting_unknown_fields"]

StructT = TypeVar("StructT", bound=msgspec.Struct)


@functools.cache
def accepting_unknown_fields(struct_type: type[StructT]) -> type[StructT]:
    """`struct_type`, accepting (and dropping) unknown fields in it and in every struct its fields hold."""
    fields: list[tuple[str, Any] | tuple[str, Any, Any]] = []
    for field in msgspec.structs.fields(struct_type):
        field_type = _accepting(field.type)
        if field.required:
            fields.append((field.name, field_type))
        elif field.default_factory is not msgspec.NODEFAULT:
            fields.append((field.name, field_type, msgspec.field(default_factory=field.default_factory)))
        else:
            fields.append((field.name, field_type, field.default))
    lenient: type[StructT] = msgspec.defstruct(  # type: ignore[assignment]  # a subclass of struct_type
        struct_type.__name__,
        fields,
        bases=(struct_type,),
        module=struct_type.__module__,
        forbid_unknown_fields=False,
    )
    return lenient


def _accepting(annotation: Any) -> Any:
    """`annotation` with each struct type in it replaced by its lenient subclass."""
    if isinstance(annotation, type) and issubclass(annotation, msgspec.Struct):
        return accepting_unknown_fields(annotation)
    origin, args = get_origin(annotation), get_args(annotation)
    if not args or origin is typing.Literal:
        return annotation
    if origin is Annotated:
        return Annotated[(_accepting(args[0]), *annotation.__metadata__)]
    converted = tuple(_accepting(arg) for arg in args)
    if converted == args:
        return annotation
    if origin in (Union, types.UnionType):
        return Union[converted]  # noqa: UP007  # built from a tuple of types
    return origin[converted]
