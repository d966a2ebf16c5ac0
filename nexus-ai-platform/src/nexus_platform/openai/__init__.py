"""OpenAI API types (msgspec) for the capabilities a service offers; their routes are the platform's."""

from nexus_platform.openai._audio import AUDIO_MEDIA_TYPES, AudioFormat, SpeechRequest
from nexus_platform.openai._chat import (
    AssistantMessage,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatMessage,
    Choice,
    ChunkChoice,
    Delta,
)
from nexus_platform.openai._embeddings import Embedding, EmbeddingList, EmbeddingRequest
from nexus_platform.openai._images import Image, ImageGenerationRequest, ImagesResponse
from nexus_platform.openai._usage import EmbeddingUsage, Usage

__all__ = [
    "AUDIO_MEDIA_TYPES",
    "AssistantMessage",
    "AudioFormat",
    "ChatCompletion",
    "ChatCompletionChunk",
    "ChatCompletionRequest",
    "ChatMessage",
    "Choice",
    "ChunkChoice",
    "Delta",
    "Embedding",
    "EmbeddingList",
    "EmbeddingRequest",
    "EmbeddingUsage",
    "Image",
    "ImageGenerationRequest",
    "ImagesResponse",
    "SpeechRequest",
    "Usage",
]
