"""image-generator: the service's own code. This file is yours.

The template created it once and `copier update` never touches it again. Everything the platform
needs from you is the `service` object at the bottom: your endpoints, readiness checks, settings,
models and start-up/shutdown work. Replace the example endpoint with your own.
"""

import time
from typing import Annotated

import msgspec
from litestar import Request, post
from litestar.params import JSONBody
from nexus_platform import ServiceSpec, current_request_id, nexus_of


class ServiceSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Your settings: field `example_prefix` is read from EXAMPLE_PREFIX. Document each in .env.example."""

    example_prefix: Annotated[str, msgspec.Meta(max_length=32)] = ""


class EchoRequest(msgspec.Struct, forbid_unknown_fields=True):
    input: Annotated[str, msgspec.Meta(min_length=1, max_length=10_000)]
    repeat: Annotated[int, msgspec.Meta(ge=1, le=10)] = 1


class EchoResponse(msgspec.Struct):
    id: str
    object: str
    created: int
    output: str


@post("/v1/echo", status_code=200, summary="Echo the input back (example endpoint)", tags=["service"])
async def echo(data: JSONBody[EchoRequest], request: Request) -> EchoResponse:
    """An example of the conventions: msgspec structs in and out, 200 for a POST, OpenAI errors."""
    settings: ServiceSettings = nexus_of(request).service_settings
    return EchoResponse(
        id=f"echo-{current_request_id()}",
        object="echo",
        created=int(time.time()),
        output=settings.example_prefix + " ".join([data.input] * data.repeat),
    )


service = ServiceSpec(
    route_handlers=[echo],
    # Readiness checks: "component:measurement" -> async def check(nexus) -> CheckResult.
    # The platform already checks BACKEND_URL when it is set and the GPUs.
    readiness_checks={},
    settings=ServiceSettings,
    # The OpenAI model objects of GET /v1/models, e.g. Model(id="my-model", created=0, owned_by="media-team").
    models=[],
)
