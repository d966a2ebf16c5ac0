"""The naming and version rules, and the OpenAI capabilities, defined once for the platform and the template.

Standard library only: the template's copier extensions (extensions/) and migrations load this file by
path from the template's checkout, where nexus-ai-platform is not installed, and the platform imports it.
Patterns are anchored-free (`re.fullmatch`); the settings and facts wrap them in `^...$` for msgspec.
"""

from typing import NamedTuple

__all__ = [
    "CAPABILITY",
    "KEBAB_CASE",
    "OPENAI_CAPABILITIES",
    "SEMVER",
    "SERVICE_NAME_MAX",
    "OpenAICapability",
    "anchored",
]

# service names and owners: lower-case words joined by single hyphens (`image-gen`)
KEBAB_CASE = r"[a-z][a-z0-9]*(-[a-z0-9]+)*"
SERVICE_NAME_MAX = 40
# Semantic Versioning 2.0.0, without a leading `v`
SEMVER = (
    r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?(\+[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?"
)
# a capability, named like the OpenAI route it serves (`chat.completions`, `audio.speech`)
CAPABILITY = r"[a-z][a-z0-9_-]*(\.[a-z][a-z0-9_-]*)*"


def anchored(pattern: str) -> str:
    """`pattern` matching a whole string, for msgspec.Meta(pattern=...) (which searches)."""
    return f"^(?:{pattern})$"


class OpenAICapability(NamedTuple):
    path: str  # the route the platform serves for it
    module: str  # the service's implementation: app/capabilities/<module>.py
    names: tuple[str, ...]  # what the route calls on that module


# The capabilities the platform serves as OpenAI routes, in the order the template offers them.
OPENAI_CAPABILITIES: dict[str, OpenAICapability] = {
    "chat.completions": OpenAICapability(
        "/v1/chat/completions", "chat_completions", ("MODELS", "complete", "stream")
    ),
    "embeddings": OpenAICapability("/v1/embeddings", "embeddings", ("MODELS", "embed")),
    "audio.speech": OpenAICapability("/v1/audio/speech", "audio_speech", ("MODELS", "speak")),
    "images.generations": OpenAICapability(
        "/v1/images/generations", "images_generations", ("MODELS", "generate")
    ),
}
