"""Token counts, as OpenAI reports them; and reading them from an answer's bytes (a wrapper's backend)."""

import msgspec

__all__ = ["EmbeddingUsage", "Usage", "read_usage"]


class Usage(msgspec.Struct):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class EmbeddingUsage(msgspec.Struct):
    prompt_tokens: int
    total_tokens: int


class _Counts(msgspec.Struct):
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


class _Counted(msgspec.Struct):
    usage: _Counts | None = None


_decode_counted = msgspec.json.Decoder(_Counted).decode


def read_usage(answer: bytes | memoryview) -> _Counts | None:
    """The `usage` of a JSON answer or stream event (chat, embeddings), or None: absent, or not OpenAI's
    shape (the answer passes through either way). Only `usage` is built; the rest is skipped."""
    try:
        return _decode_counted(answer).usage
    except msgspec.DecodeError:
        return None
