"""POST /v1/embeddings: request and response types of the official OpenAI API, as msgspec structs."""

from typing import Annotated, Literal, cast

import msgspec

from nexus_platform._http.errors import ServiceError
from nexus_platform.openai._usage import EmbeddingUsage

__all__ = ["Embedding", "EmbeddingList", "EmbeddingRequest"]

_Text = Annotated[str, msgspec.Meta(min_length=1)]
_Tokens = Annotated[list[int], msgspec.Meta(min_length=1)]
# texts, one token array, or token arrays (msgspec cannot tell list[str] from list[int] in a union;
# `inputs()` checks that the items are of one kind)
_Items = Annotated[list[_Text | int | _Tokens], msgspec.Meta(min_length=1, max_length=2048)]


class EmbeddingRequest(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    input: _Text | _Items
    model: Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: Annotated[int, msgspec.Meta(ge=1)] | None = None
    user: str | None = None

    def inputs(self) -> list[str] | list[list[int]]:
        """The input as a list of texts or of token arrays; 400 when the items are of mixed kinds."""
        if isinstance(self.input, str):
            return [self.input]
        kinds = {type(item) for item in self.input}
        if kinds == {int}:
            return [cast("list[int]", self.input)]  # one token array: every item is an int
        if len(kinds) > 1:
            raise ServiceError(
                400,
                "invalid_value",
                "`input` must be a string, strings, a token array or token arrays, not a mix",
                param="input",
            )
        return cast("list[str] | list[list[int]]", self.input)  # items of one kind (checked above)


class Embedding(msgspec.Struct):
    index: int
    # a list of floats, or with encoding_format "base64" the little-endian float32 bytes in base64
    embedding: list[float] | str
    object: Literal["embedding"] = "embedding"


class EmbeddingList(msgspec.Struct):
    data: list[Embedding]
    model: str
    usage: EmbeddingUsage
    object: Literal["list"] = "list"
