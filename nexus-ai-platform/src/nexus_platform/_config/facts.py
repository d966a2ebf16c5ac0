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


# what each value must be, in words (the patterns are nexus_platform._rules')
_RULES = {
    "SERVICE_VERSION": "a semantic version without a leading v, such as 1.2.3 or 2.0.0-rc.1",
    "SERVICE_DESCRIPTION": "one line of 1 to 200 characters",
    "SERVICE_OWNER": "a team name in kebab-case, such as media-team",
    "SERVICE_CAPABILITIES": "at most 32 comma-separated names such as chat.completions or rerank",
}


class FactsError(Exception):
    """release/service.env is missing or says something invalid; the message names the line."""


def parse_facts(text: str, source: str = "release/service.env") -> ServiceFacts:
    """The facts of `text`; FactsError names the line of a malformed, repeated or invalid value. The other
    readers of the file (CI's sed, kustomize) take a line as it is: a value with spaces around it, a key
    given twice or a capability listed twice is refused here, not read differently there."""
    raw: dict[str, object] = {}
    lines: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = _LINE.match(line)
        if match is None:
            raise FactsError(f"{source}:{number}: expected KEY=value, got {line!r}")
        key, value = match.groups()
        if key in lines:
            raise FactsError(f"{source}:{number}: {key} is already set on line {lines[key]}")
        if value != value.strip():
            raise FactsError(f"{source}:{number}: {key} has spaces around its value")
        raw[key], lines[key] = value, number
    if isinstance(capabilities := raw.get("SERVICE_CAPABILITIES"), str):
        listed = [item.strip() for item in capabilities.split(",") if item.strip()]
        if twice := sorted({item for item in listed if listed.count(item) > 1}):
            raise FactsError(
                f"{source}:{lines['SERVICE_CAPABILITIES']}: SERVICE_CAPABILITIES lists {', '.join(twice)} twice"
            )
        raw["SERVICE_CAPABILITIES"] = listed
    try:
        return msgspec.convert(raw, ServiceFacts)
    except msgspec.ValidationError as error:
        found = re.search(r" - at `\$\.([A-Z_]+)", str(error))
        key = found.group(1) if found else ""
        if key not in lines:  # a missing or unknown key: msgspec's sentence names it
            raise FactsError(f"{source}: {error}") from None
        rule = _RULES.get(key, str(error).split(" - at ")[0])
        raise FactsError(f"{source}:{lines[key]}: {key} must be {rule} (got {raw[key]!r})") from None


def read_facts(path: Path) -> ServiceFacts:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise FactsError(f"cannot read the service's facts from {path} ({type(error).__name__})") from None
    return parse_facts(text)
