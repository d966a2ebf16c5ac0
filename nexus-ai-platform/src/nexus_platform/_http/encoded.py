"""Responses whose body is already encoded: the probes' cached answers and the platform's errors.

A handler's return type is what Litestar documents in OpenAPI (`Response[Health]`); the bytes are sent
as they are whatever that type says. `encoded_response` is the one place where the two meet: its
caller names the document the bytes encode.
"""

from collections.abc import Mapping
from typing import Any, TypeVar

from litestar import Response

__all__ = ["encoded_response"]

Document = TypeVar("Document")


def encoded_response(
    body: bytes,
    document: type[Document],
    *,
    status_code: int,
    media_type: str,
    headers: Mapping[str, str] | None = None,
) -> Response[Document]:
    """`body` (the encoded `document`) sent unchanged, typed as the document for OpenAPI."""
    response: Response[Any] = Response(body, status_code=status_code, media_type=media_type, headers=headers)
    return response
