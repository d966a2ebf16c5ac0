"""images.generations: a 1x1 PNG per image asked for."""

import base64
import time

from nexus_platform import Model, NexusContext, ServiceError
from nexus_platform.openai import Image, ImageGenerationRequest, ImagesResponse

MODELS = [Model(id="test-image", created=0, owned_by="platform-tests")]
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


async def generate(request: ImageGenerationRequest, nexus: NexusContext) -> ImagesResponse:
    if request.response_format == "url":
        raise ServiceError(400, "unsupported_value", "images come as b64_json here", param="response_format")
    images = [Image(b64_json=base64.b64encode(PNG).decode()) for _ in range(request.n or 1)]
    return ImagesResponse(created=int(time.time()), data=images)
