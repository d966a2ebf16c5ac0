# Managed by nexus-template: `copier update` replaces this file. Your code belongs in app/service.py.
"""OpenAI API types (msgspec) for the capabilities a service offers; their routes are the platform's."""

from app.nexus.openai._audio import AUDIO_MEDIA_TYPES, AudioFormat, SpeechRequest
from app.nexus.openai._chat import (
    AssistantMessage,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatMessage,
    Choice,
    ChunkChoice,
    Delta,
)
from app.nexus.openai._embeddings import Embedding, EmbeddingList, EmbeddingRequest
from app.nexus.openai._images import Image, ImageGenerationRequest, ImagesResponse
from app.nexus.openai._usage import EmbeddingUsage, Usage

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
