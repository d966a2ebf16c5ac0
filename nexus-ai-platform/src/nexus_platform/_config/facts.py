"""The service's own facts (version, description, owner, capabilities), read from release/service.env.

That file belongs to the service: releasing it is an edit of its SERVICE_VERSION line. The app reads it
here (for /v1/metadata and OpenAPI); `image/build-like-ci.sh` passes the values this parser reads to the
image build (labels, tag; `python -m nexus_platform facts`), the Dockerfile checks them the same way, and
kustomize reads the file for the Kubernetes image tag.

Format: KEY=value per line, # comment lines. The file is valid shell too (a test sources it with bash): a
value with spaces or shell characters is quoted, "..." (where \\, \", \\$ and \\` stand for the character) or
'...' (as written), and means what a shell would read. An unquoted value is the rest of the line, as the
files of services made before the quoting have it. Kustomize's env reader keeps quotes as they are: the
values it uses (SERVICE_VERSION, SERVICE_OWNER) never need them, and are refused quoted (the image tag
would be `"1.2.3"`).
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


# the keys kustomize's env reader takes too (release/kustomization.yaml): it keeps quotes in the value
_READ_BY_KUSTOMIZE = ("SERVICE_VERSION", "SERVICE_OWNER")


class FactsError(Exception):
    """release/service.env is missing or says something invalid; the message names the line."""


# In "...", a shell removes the backslash before these only; unescaped, $ and ` would be expanded
_ESCAPED = re.compile(r'\\(["\\$`])')
_EXPANDED = re.compile(r'(?<!\\)(?:\\\\)*["$`]')


def _unquoted(value: str) -> str | None:
    """The value a shell reads from `value`, or None where the shell would read something else (an
    unclosed or inner quote, an expansion) than the text."""
    if len(value) >= 2 and value[0] == value[-1] == "'":
        inner = value[1:-1]
        return None if "'" in inner else inner
    if len(value) >= 2 and value[0] == value[-1] == '"':
        inner = value[1:-1]
        if (len(inner) - len(inner.rstrip("\\"))) % 2:
            return None  # the closing quote is escaped
        return None if _EXPANDED.search(inner) else _ESCAPED.sub(r"\1", inner)
    return None if value[:1] in {"'", '"'} else value


def parse_facts(text: str, source: str = "release/service.env") -> ServiceFacts:
    """The facts of `text`; FactsError names the line of a malformed, repeated or invalid value. A quoted
    value a shell would read differently (a quote left open, a $ or ` it would expand), spaces around a
    value, a quoted value kustomize reads, a key given twice or a capability listed twice is refused here,
    not read differently elsewhere.
    An unquoted value is the rest of its line, as files written before values were quoted have them (a
    shell reads such a value differently when it holds spaces, quotes or $: quote it)."""
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
        unquoted = _unquoted(value)
        if unquoted is None:
            raise FactsError(
                f'{source}:{number}: {key} must be quoted as a shell reads it: "..." with \\", \\$, \\` and '
                f"\\\\ for those characters, or '...' without ' (got {value})"
            )
        if key in _READ_BY_KUSTOMIZE and unquoted != value:
            raise FactsError(
                f"{source}:{number}: {key} must not be quoted: kustomize reads it too and keeps the quotes "
                f"(got {value}, write {key}={unquoted})"
            )
        raw[key], lines[key] = unquoted, number
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
