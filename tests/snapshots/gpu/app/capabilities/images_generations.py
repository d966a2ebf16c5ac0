"""images.generations: your implementation of POST /v1/images/generations. This file is yours.

The platform validates the request and answers 404 for a model not in MODELS. The example paints each
image in one colour taken from a hash of the prompt (PNG); replace it with your model. Without storage
for images, `response_format: url` answers data: URLs. Painting and compressing stand in for the model:
CPU work, run in the platform's thread pool (`run_blocking`), never on the event loop, which serves every
other request meanwhile.
"""

import base64
import hashlib
import struct
import time
import zlib

from nexus_platform import Model, NexusContext, ServiceError, run_blocking
from nexus_platform.openai import Image, ImageGenerationRequest, ImagesResponse

MODELS = [Model(id="example-image", created=0, owned_by="media-team")]
MAX_SIDE = 1024


def _size(request: ImageGenerationRequest) -> tuple[int, int]:
    if request.size in (None, "auto"):
        return 256, 256
    width, _, height = request.size.partition("x")
    if not (width.isdigit() and height.isdigit()) or not (0 < int(width) <= MAX_SIDE >= int(height) > 0):
        raise ServiceError(
            400, "invalid_value", f"`size` must be WIDTHxHEIGHT up to {MAX_SIDE}", param="size"
        )
    return int(width), int(height)


def _png(width: int, height: int, rgb: bytes) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + rgb * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


async def generate(request: ImageGenerationRequest, nexus: NexusContext) -> ImagesResponse:
    width, height = _size(request)
    images = await run_blocking(nexus, _paint, request, width, height)
    return ImagesResponse(
        created=int(time.time()), data=images, output_format="png", size=f"{width}x{height}"
    )


def _paint(request: ImageGenerationRequest, width: int, height: int) -> list[Image]:
    """The model's work (blocking: in a thread)."""
    images = []
    for index in range(request.n or 1):
        rgb = hashlib.sha256(f"{request.prompt}#{index}".encode()).digest()[:3]
        encoded = base64.b64encode(_png(width, height, rgb)).decode()
        if request.response_format == "b64_json":
            images.append(Image(b64_json=encoded))
        else:
            images.append(Image(url=f"data:image/png;base64,{encoded}"))
    return images
