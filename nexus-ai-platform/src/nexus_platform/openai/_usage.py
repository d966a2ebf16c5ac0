"""Token counts, as OpenAI reports them."""

import msgspec

__all__ = ["EmbeddingUsage", "Usage"]


class Usage(msgspec.Struct):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class EmbeddingUsage(msgspec.Struct):
    prompt_tokens: int
    total_tokens: int
