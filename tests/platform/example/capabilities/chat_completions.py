"""chat.completions: answers "Hello from the tests", whole or streamed word by word."""

import time
from collections.abc import AsyncIterator

from nexus_platform import Model, NexusContext
from nexus_platform.openai import (
    AssistantMessage,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    Choice,
    ChunkChoice,
    Delta,
    Usage,
)

MODELS = [Model(id="test-chat", created=0, owned_by="platform-tests")]
WORDS = ["Hello", " from", " the", " tests"]


async def complete(request: ChatCompletionRequest, nexus: NexusContext) -> ChatCompletion:
    text = "".join(WORDS)
    return ChatCompletion(
        id="chatcmpl-test",
        created=int(time.time()),
        model=request.model,
        choices=[Choice(index=0, message=AssistantMessage(content=text), finish_reason="stop")],
        usage=Usage(prompt_tokens=1, completion_tokens=4, total_tokens=5),
    )


def stream(request: ChatCompletionRequest, nexus: NexusContext) -> AsyncIterator[ChatCompletionChunk]:
    async def chunks() -> AsyncIterator[ChatCompletionChunk]:
        for word in WORDS:
            choice = ChunkChoice(index=0, delta=Delta(content=word), finish_reason=None)
            yield ChatCompletionChunk(id="chatcmpl-test", created=0, model=request.model, choices=[choice])
        end = ChunkChoice(index=0, delta=Delta(), finish_reason="stop")
        yield ChatCompletionChunk(id="chatcmpl-test", created=0, model=request.model, choices=[end])

    return chunks()
