"""audio.speech: WAV only (FORMATS), two voices (VOICES): a header and silence that follows the text."""

import struct
from collections.abc import AsyncIterator

from nexus_platform import Model, NexusContext, ServiceError
from nexus_platform.openai import SpeechRequest

MODELS = [Model(id="test-tts", created=0, owned_by="platform-tests")]
FORMATS = ("wav",)
VOICES = ("robot", "whisper")
RATE = 24_000


async def speak(request: SpeechRequest, nexus: NexusContext) -> AsyncIterator[bytes]:
    if request.response_format not in FORMATS:
        raise ServiceError(400, "unsupported_value", "This service speaks wav", param="response_format")
    if request.voice not in VOICES:
        raise ServiceError(400, "unsupported_value", f"The voices are {', '.join(VOICES)}", param="voice")
    samples = bytes(2 * RATE * len(request.input) // 100)

    async def chunks() -> AsyncIterator[bytes]:
        yield b"RIFF" + struct.pack("<I", 36 + len(samples)) + b"WAVEfmt "
        yield (
            struct.pack("<IHHIIHH", 16, 1, 1, RATE, RATE * 2, 2, 16)
            + b"data"
            + struct.pack("<I", len(samples))
        )
        yield samples

    return chunks()
