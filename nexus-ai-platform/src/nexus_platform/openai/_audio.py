"""POST /v1/audio/speech: the request type of the official OpenAI API; the answer is the audio itself."""

from typing import Annotated, Literal

import msgspec

__all__ = ["AUDIO_MEDIA_TYPES", "AudioFormat", "SpeechRequest"]

AudioFormat = Literal["mp3", "opus", "aac", "flac", "wav", "pcm"]
# what OpenAI answers for each response_format (pcm: raw 24 kHz 16-bit signed little-endian mono)
AUDIO_MEDIA_TYPES: dict[str, str] = {
    "mp3": "audio/mpeg",
    "opus": "audio/opus",
    "aac": "audio/aac",
    "flac": "audio/flac",
    "wav": "audio/wav",
    "pcm": "audio/pcm",
}


class SpeechRequest(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    model: Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
    input: Annotated[str, msgspec.Meta(min_length=1, max_length=4096)]
    # OpenAI's voices are alloy, ash, ballad, coral, echo, fable, onyx, nova, sage, shimmer, verse, ...
    voice: Annotated[str, msgspec.Meta(min_length=1, max_length=64)] | dict[str, str]
    instructions: Annotated[str, msgspec.Meta(max_length=4096)] | None = None
    response_format: AudioFormat = "mp3"
    speed: Annotated[float, msgspec.Meta(ge=0.25, le=4.0)] = 1.0
    stream_format: Literal["sse", "audio"] = "audio"
