"""The example service as a rendered service's app/main.py declares one: `service` and `IDENTITY`."""

import time
from pathlib import Path
from typing import Annotated

import msgspec
from litestar import post
from litestar.params import JSONBody
from nexus_platform import Identity, ServiceSpec, current_request_id

PACKAGE = "tests.platform.example"


class EchoRequest(msgspec.Struct, forbid_unknown_fields=True):
    input: Annotated[str, msgspec.Meta(min_length=1, max_length=10_000)]


class EchoResponse(msgspec.Struct):
    id: str
    created: int
    output: str


@post(
    "/v1/test/echo", status_code=200, summary="Echo the input (the platform tests' endpoint)", tags=["test"]
)
async def echo(data: JSONBody[EchoRequest]) -> EchoResponse:
    return EchoResponse(id=f"echo-{current_request_id()}", created=int(time.time()), output=data.input)


service = ServiceSpec(route_handlers=[echo])
IDENTITY = Identity(
    name="platform-tests",
    facts_file=Path(__file__).resolve().parent / "release" / "service.env",
    template_version="v0.0.0-tests",
    package=PACKAGE,
)
