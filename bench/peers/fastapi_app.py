"""The platform's previous stack: FastAPI + pydantic, as the seed's example service would be written."""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path
from typing import Annotated, Literal

from fastapi import FastAPI
from fastapi.responses import JSONResponse
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
