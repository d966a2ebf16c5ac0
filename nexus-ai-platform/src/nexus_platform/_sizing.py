"""The limits a service's workload needs: model-sized defaults for the services that run or wrap models.

A request to a model takes as long as its generation (1,000 tokens at 20 tokens/s: 50 s; a cold model load
before the first token: minutes) and carries long contexts and base64 images; the platform's plain
defaults (a 30 s backend call, the first byte within 60 s, 1 MiB bodies) would cut that work off. Each
offered OpenAI capability, wrapping a backend (backend=openai) and being the gateway (role=gateway, which
carries everyone's requests and streams, each holding a slot) ask for the sizes below; a service gets the
largest of what it asks for, as the defaults of BACKEND_TIMEOUT_SECONDS, REQUEST_TIMEOUT_SECONDS,
MAX_BODY_BYTES and MAX_CONCURRENT_REQUESTS (each still a setting). docs/settings.md shows this table (tests/platform/test_sizing.py
keeps the two equal).
"""

from collections.abc import Collection
from typing import NamedTuple

__all__ = ["GATEWAY", "PLAIN", "SIZES", "WRAPPER", "Sizes", "described", "workload_defaults"]


class Sizes(NamedTuple):
    backend_timeout_seconds: float  # a non-streamed call to the backend, answer included
    request_timeout_seconds: float  # the first byte of the answer (a stream's first event)
    max_body_bytes: int  # the request body
    max_concurrent_requests: int  # requests (a stream holds one for its whole length)


MIB = 1 << 20
# a service without model capabilities (its own routes only)
PLAIN = Sizes(30.0, 60.0, 1 * MIB, 64)
SIZES = {
    # long generations, cold model loads; long contexts and base64 images in the body
    "chat.completions": Sizes(600.0, 600.0, 16 * MIB, 64),
    # batches of inputs in the body; a pass over them, no generation
    "embeddings": Sizes(120.0, 120.0, 16 * MIB, 64),
    # the audio streams as it is made: the first bytes after the model has started
    "audio.speech": Sizes(120.0, 120.0, 1 * MIB, 64),
    # a diffusion run answers at its end, not streamed
    "images.generations": Sizes(600.0, 600.0, 1 * MIB, 64),
}
# a wrapper forwards whatever its backend serves: sized for the largest
WRAPPER = Sizes(600.0, 600.0, 16 * MIB, 64)
# the gateway: every client's requests and streams, forwarded (its pool: GATEWAY_MAX_CONNECTIONS)
GATEWAY = Sizes(600.0, 600.0, 16 * MIB, 1024)


def workload_defaults(
    capabilities: Collection[str], backend: str, role: str = "service"
) -> dict[str, float | int]:
    """The defaults of the sized settings, by field name, for a service offering `capabilities`."""
    asked = [PLAIN, *(SIZES[name] for name in capabilities if name in SIZES)]
    if backend == "openai":
        asked.append(WRAPPER)
    if role == "gateway":
        asked.append(GATEWAY)
    return {name: max(sizes[index] for sizes in asked) for index, name in enumerate(Sizes._fields)}


def described(setting: str) -> str:
    """`setting`'s default in words, from the table (the settings documentation's default column)."""
    plain = getattr(PLAIN, setting)
    by_value: dict[float | int, list[str]] = {}
    for name, sizes in [*SIZES.items(), ("a wrapper", WRAPPER), ("the gateway", GATEWAY)]:
        if getattr(sizes, setting) != plain:
            by_value.setdefault(getattr(sizes, setting), []).append(name)
    parts = [
        f"{_number(value)} for {', '.join(names)}" for value, names in sorted(by_value.items(), reverse=True)
    ]
    return "; ".join([*parts, f"else {_number(plain)} (docs/settings.md)"])


def _number(value: float | int) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)
