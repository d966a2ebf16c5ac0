"""POST /v1/images/generations: request and response types of the official OpenAI API."""

from typing import Annotated, Literal

import msgspec

__all__ = ["Image", "ImageGenerationRequest", "ImagesResponse"]


class ImageGenerationRequest(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    prompt: Annotated[str, msgspec.Meta(min_length=1, max_length=32000)]
    model: Annotated[str, msgspec.Meta(min_length=1, max_length=256)] | None = None
    n: Annotated[int, msgspec.Meta(ge=1, le=10)] | None = 1
    size: str | None = "auto"
    quality: str | None = "auto"
    response_format: Literal["url", "b64_json"] | None = "url"
    style: Literal["vivid", "natural"] | None = None
    background: Literal["transparent", "opaque", "auto"] | None = None
    moderation: Literal["low", "auto"] | None = None
    output_format: Literal["png", "jpeg", "webp"] | None = None
    output_compression: Annotated[int, msgspec.Meta(ge=0, le=100)] | None = None
    partial_images: Annotated[int, msgspec.Meta(ge=0, le=3)] | None = None
    stream: bool | None = False
    user: str | None = None


class Image(msgspec.Struct, omit_defaults=True):
    b64_json: str | None = None
    url: str | None = None
    revised_prompt: str | None = None


class ImagesResponse(msgspec.Struct, omit_defaults=True):
    created: int
    data: list[Image]
    output_format: Literal["png", "jpeg", "webp"] | None = None
    size: str | None = None
    quality: Literal["low", "medium", "high"] | None = None
    background: Literal["transparent", "opaque"] | None = None
