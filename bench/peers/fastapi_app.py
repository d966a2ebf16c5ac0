"""The platform's previous stack: FastAPI + pydantic, as the seed's example service would be written."""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Literal

from fastapi import FastAPI
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field


class Endpoint(BaseModel):
    path: str
    method: str
    summary: str


class Links(BaseModel):
    health: str
    readiness: str
    models: str
    openapi: str


class Build(BaseModel):
    git_sha: str | None
    build_time: str | None
    template_version: str


class Metadata(BaseModel):
    schema_version: str
    name: str
    version: str
    description: str
    api_version: str
    owner: str
    capabilities: list[str]
    endpoints: list[Endpoint]
    models: list[dict]
    gpu: bool
    gpu_info: dict | None
    registration: dict | None
    instance_id: str
    started_at: str
    build: Build
    links: Links


class Health(BaseModel):
    status: Literal["pass"] = "pass"


class Readiness(BaseModel):
    status: Literal["pass", "warn", "fail"]
    checks: dict[str, list[dict]]


class EchoRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    input: Annotated[str, Field(min_length=1, max_length=10_000)]
    repeat: Annotated[int, Field(ge=1, le=10)] = 1


class EchoResponse(BaseModel):
    id: str
    object: str
    created: int
    output: str


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Literal["developer", "system", "user", "assistant", "tool"]
    content: str | None = None
    name: str | None = None


class ChatCompletionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: Annotated[str, Field(min_length=1, max_length=256)]
    messages: Annotated[list[ChatMessage], Field(min_length=1)]
    stream: bool | None = False
    max_tokens: Annotated[int, Field(ge=1)] | None = None
    temperature: Annotated[float, Field(ge=0, le=2)] | None = 1.0
    top_p: Annotated[float, Field(ge=0, le=1)] | None = 1.0
    n: Annotated[int, Field(ge=1, le=128)] | None = 1
    user: str | None = None


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str | None
    refusal: str | None = None


class Choice(BaseModel):
    index: int
    message: AssistantMessage
    finish_reason: str
    logprobs: dict | None = None


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage


class Delta(BaseModel):
    role: str | None = None
    content: str | None = None


class ChunkChoice(BaseModel):
    index: int
    delta: Delta
    finish_reason: str | None = None


class ChatCompletionChunk(BaseModel):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]


HEALTH_JSON = "application/health+json"
METADATA = Metadata.model_validate(json.loads(Path(os.environ["BENCH_METADATA_FILE"]).read_text()))
app = FastAPI()


@app.get("/health", response_class=JSONResponse)
async def health() -> JSONResponse:
    return JSONResponse(Health().model_dump(), media_type=HEALTH_JSON, headers={"cache-control": "no-store"})


@app.get("/readyz")
async def readyz() -> JSONResponse:
    body = Readiness(status="pass", checks={}).model_dump()
    return JSONResponse(body, media_type=HEALTH_JSON, headers={"cache-control": "no-store"})


@app.get("/v1/metadata", response_model=Metadata)
async def metadata() -> Metadata:
    return METADATA


@app.post("/v1/echo", response_model=EchoResponse)
async def echo(data: EchoRequest) -> EchoResponse:
    return EchoResponse(
        id=f"echo-{uuid.uuid4().hex}",
        object="echo",
        created=int(time.time()),
        output=" ".join([data.input] * data.repeat),
    )


def _reply(data: ChatCompletionRequest) -> tuple[list[str], int]:
    """The rendered service's example chat: "You said: <last user message>"."""
    last_user = next((m.content or "" for m in reversed(data.messages) if m.role == "user"), "")
    prompt_tokens = sum(len((m.content or "").split()) for m in data.messages)
    return f"You said: {last_user}".split(), prompt_tokens


@app.post("/v1/chat/completions", response_model=None)
async def chat_completions(data: ChatCompletionRequest) -> ChatCompletion | StreamingResponse:
    words, prompt_tokens = _reply(data)
    completion_id, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
    if data.stream:

        def event(choice: ChunkChoice) -> str:
            chunk = ChatCompletionChunk(id=completion_id, created=created, model=data.model, choices=[choice])
            return f"data: {chunk.model_dump_json()}\n\n"

        async def events() -> AsyncIterator[str]:
            yield event(ChunkChoice(index=0, delta=Delta(role="assistant", content="")))
            for index, word in enumerate(words):
                yield event(ChunkChoice(index=0, delta=Delta(content=word if index == 0 else " " + word)))
            yield event(ChunkChoice(index=0, delta=Delta(), finish_reason="stop"))
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")
    message = AssistantMessage(content=" ".join(words))
    usage = Usage(
        prompt_tokens=prompt_tokens, completion_tokens=len(words), total_tokens=prompt_tokens + len(words)
    )
    return ChatCompletion(
        id=completion_id,
        created=created,
        model=data.model,
        choices=[Choice(index=0, message=message, finish_reason="stop")],
        usage=usage,
    )
