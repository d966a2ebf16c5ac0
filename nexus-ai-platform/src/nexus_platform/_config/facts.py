"""The service's own facts (version, description, owner, capabilities), read from release/service.env.

That file belongs to the service: releasing it is an edit of its SERVICE_VERSION line. The app reads it
here (for /v1/metadata and OpenAPI); CI passes the same lines to the image build (labels, tag) and
kustomize reads it for the Kubernetes image tag. Format: KEY=value per line, no quotes, # comments.
"""

import re
from pathlib import Path
from typing import Annotated

import msgspec

from nexus_platform._rules import CAPABILITY, KEBAB_CASE, SEMVER, anchored

_LINE = re.compile(r"^([A-Z][A-Z0-9_]*)=(.*)$")

Capability = Annotated[str, msgspec.Meta(pattern=anchored(CAPABILITY))]


class ServiceFacts(msgspec.Struct, frozen=True, kw_only=True, rename="upper", forbid_unknown_fields=True):
    """What release/service.env says: field `service_version` is the line SERVICE_VERSION=..."""

    service_version: Annotated[str, msgspec.Meta(pattern=anchored(SEMVER))]
    service_description: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    service_owner: Annotated[str, msgspec.Meta(pattern=anchored(KEBAB_CASE))]
    service_capabilities: Annotated[tuple[Capability, ...], msgspec.Meta(max_length=32)] = ()


class FactsError(Exception):
    """release/service.env is missing or says something invalid; the message names the line."""


def parse_facts(text: str, source: str = "release/service.env") -> ServiceFacts:
    raw: dict[str, object] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = _LINE.match(line)
        if match is None:
            raise FactsError(f"{source}:{number}: expected KEY=value, got {line!r}")
        raw[match.group(1)] = match.group(2).strip()
    if isinstance(capabilities := raw.get("SERVICE_CAPABILITIES"), str):
        raw["SERVICE_CAPABILITIES"] = [item.strip() for item in capabilities.split(",") if item.strip()]
    try:
        return msgspec.convert(raw, ServiceFacts)
    except msgspec.ValidationError as error:
        raise FactsError(f"{source}: {error}") from None


def read_facts(path: Path) -> ServiceFacts:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise FactsError(f"cannot read the service's facts from {path} ({type(error).__name__})") from None
    return parse_facts(text)
