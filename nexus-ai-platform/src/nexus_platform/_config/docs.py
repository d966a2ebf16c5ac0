"""The platform settings' documentation, written from PlatformSettings itself: each field's
`msgspec.Meta(description=..., extra={"group": ...})` in nexus_platform/_config/settings.py is the one
place a setting is explained. The platform part of a service's .env.example and README settings table are
this module's output (nexus_platform.testing keeps them equal); the template's docs tables are made the
same way.

A service's own settings (the fields of its `ServiceSpec.settings` struct) are documented the same way, from
their `msgspec.Meta(description=...)`: `own_settings` reads them, `service_env_lines` writes their part of
.env.example (under the SERVICE_HEADER line) and `markdown_table` the README's service settings table.

A setting of an optional feature (`extra={"feature": "gpu"}`) is documented only for services with that
feature. Defaults that come from a template answer (`extra={"answer": "port"}`) are written as the
service's value (its Identity), as the Jinja expression the template renders it from (`{{ port }}`), or
in words ("the `port` answer").
"""

import textwrap
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args, get_origin

import msgspec

from nexus_platform._config.settings import (
    FEATURE_ANSWERS,
    PlatformSettings,
    env_name,
    feature_of,
    secret_fields,
)
from nexus_platform._identity import Identity

__all__ = [
    "ENV_END",
    "ENV_START",
    "FEATURES",
    "README_END",
    "README_START",
    "SERVICE_GROUP",
    "SERVICE_HEADER",
    "SERVICE_README_END",
    "SERVICE_README_START",
    "AnswerDefaults",
    "Setting",
    "UndocumentedSettings",
    "env_block",
    "generated_block",
    "markdown_table",
    "own_settings",
    "platform_settings",
    "service_env_lines",
    "service_settings",
]

# The platform part of .env.example runs from ENV_START to the line starting with ENV_END (exclusive).
ENV_START = (
    "# --- Platform settings: generated from nexus-ai-platform's settings, replaced by copier update ---"
)
ENV_END = "# --- Service settings"
README_START = "<!-- platform settings: generated from nexus-ai-platform's settings (python -m nexus_platform settings) -->"
README_END = "<!-- end of the platform settings -->"
_WIDTH = 103
# the service's own part of .env.example starts with this line (ENV_END starts it too); the README's table
# of the service's settings runs from SERVICE_README_START to SERVICE_README_END
SERVICE_GROUP = "Service settings"
SERVICE_HEADER = f"# --- {SERVICE_GROUP} (yours: add your variables below this line) ".ljust(_WIDTH, "-")
SERVICE_README_START = (
    "<!-- service settings: generated from ServiceSpec.settings (python -m nexus_platform settings --app) -->"
)
SERVICE_README_END = "<!-- end of the service settings -->"
_JINJA_MARKERS = ("{{", "{%", "{#")
AnswerDefaults = Literal["values", "jinja", "words"]


class UndocumentedSettings(Exception):
    """Fields without a description or group, or whose description the template cannot hold; the
    message names them and says what to do."""


@dataclass(frozen=True)
class Setting:
    variable: str
    default: Any
    description: str
    group: str
    answer: str  # the template answer the default comes from, or ""
    secret: bool
    accepts: str = ""  # the values the type accepts, in words ("1 to 65535"), or ""
    default_doc: str = ""  # where a default read at start-up comes from, in words; written empty

    @property
    def explained(self) -> str:
        """The description, with the accepted values where the type limits them."""
        if not self.accepts:
            return self.description
        return (
            f"{self.description}; accepted: {self.accepts}"
            if self.description
            else f"accepted: {self.accepts}"
        )


def _meta(annotation: Any) -> tuple[str, dict[str, Any]]:
    description = ""
    extra: dict[str, Any] = {}
    for meta in getattr(annotation, "__metadata__", ()):
        if isinstance(meta, msgspec.Meta):
            description = meta.description or description
            extra = {**extra, **(meta.extra or {})}
    return description, extra


_BOUNDS = {"ge": "at least", "gt": "more than", "le": "up to", "lt": "below"}


def _accepts(annotation: Any) -> str:
    """The values a field's type accepts, in words: numeric bounds, or the choices of a Literal or bool."""
    base = getattr(annotation, "__origin__", annotation)
    if get_origin(base) is Literal:
        return " or ".join(str(choice) if choice != "" else "empty" for choice in get_args(base))
    if base is bool:
        return "true or false"
    bounds = {
        name: getattr(meta, name)
        for meta in getattr(annotation, "__metadata__", ())
        if isinstance(meta, msgspec.Meta)
        for name in _BOUNDS
        if getattr(meta, name) is not None
    }
    if set(bounds) == {"ge", "le"}:
        return f"{bounds['ge']} to {bounds['le']}"
    return ", ".join(f"{_BOUNDS[name]} {value}" for name, value in bounds.items())


# the optional features whose settings a service has only when it was rendered with them
FEATURES = tuple(FEATURE_ANSWERS)


def platform_settings(
    settings_type: type[msgspec.Struct] = PlatformSettings,
    *,
    features: Collection[str] = FEATURES,
    defaults: Mapping[str, object] | None = None,
) -> list[Setting]:
    """Every field of `settings_type` with its documentation, leaving out the settings of features not
    in `features`, with `defaults` (by field name: a service's identity) over the type's own;
    UndocumentedSettings names the fields that have none."""
    hidden = secret_fields(settings_type)
    found, missing = [], []
    for field in msgspec.structs.fields(settings_type):
        if feature_of(field) not in {"", *features}:
            continue
        description, extra = _meta(field.type)
        if not description.strip() or not str(extra.get("group", "")).strip():
            missing.append(field.name)
            continue
        if any(marker in description for marker in _JINJA_MARKERS):
            raise UndocumentedSettings(
                f"{field.name}: a description cannot hold {' '.join(_JINJA_MARKERS)} (it is written into "
                "the template's Jinja files)"
            )
        found.append(
            Setting(
                env_name(field.name),
                (defaults or {}).get(field.name, field.default),
                " ".join(description.split()),
                extra["group"],
                extra.get("answer", ""),
                field.name in hidden,
                _accepts(field.type),
                extra.get("default_doc", ""),
            )
        )
    if missing:
        raise UndocumentedSettings(
            f"{settings_type.__name__} fields without a description or group: {', '.join(missing)}. "
            "Give each one in nexus_platform/_config/settings.py, e.g. "
            '`name: Annotated[int, msgspec.Meta(description="What it does", extra={"group": "Limits"})] = 1`, '
            "then regenerate the documentation (nexus-template: `make settings-docs`; docs/settings.md)."
        )
    return found


def service_settings(identity: Identity) -> list[Setting]:
    """The platform settings of the service `identity` describes: its features' settings, its defaults."""
    return platform_settings(features=identity.features, defaults=identity.setting_defaults())


def own_settings(settings_type: type[msgspec.Struct] | None) -> list[Setting]:
    """The fields of a service's settings struct (`ServiceSpec.settings`), each with its description (empty
    where its `msgspec.Meta` gives none: a service's setting may stay undocumented), in the SERVICE_GROUP."""
    if settings_type is None:
        return []
    hidden = secret_fields(settings_type)
    documented = []
    for field in msgspec.structs.fields(settings_type):
        description, _ = _meta(field.type)
        default = field.default
        if default is msgspec.NODEFAULT:
            default = field.default_factory() if field.default_factory is not msgspec.NODEFAULT else ""
        documented.append(
            Setting(
                env_name(field.name),
                default,
                " ".join(description.split()),
                SERVICE_GROUP,
                "",
                field.name in hidden,
                _accepts(field.type),
            )
        )
    return documented


def service_env_lines(setting: Setting) -> list[str]:
    """The lines of .env.example that document one of the service's own settings: its description, then
    VARIABLE=default (as the platform's are written)."""
    comment = textwrap.wrap(setting.explained, _WIDTH - 2, initial_indent="# ", subsequent_indent="# ")
    return [*comment, f"{setting.variable}={_env_value(setting, 'values')}"]


def _env_value(setting: Setting, answers: AnswerDefaults) -> str:
    if setting.default_doc:
        return ""  # empty counts as unset: the default from where default_doc says
    if setting.answer and answers == "jinja":
        return "{{ " + setting.answer + " }}"
    default = setting.default
    if setting.secret and default:
        return ""  # never written out; the variable documents itself as secret
    if isinstance(default, bool):
        return str(default).lower()
    if isinstance(default, int | float | str):
        return str(default)
    return msgspec.json.encode(default).decode()


def _grouped(settings: Iterable[Setting]) -> dict[str, list[Setting]]:
    """Settings by group, groups in the order of their first field."""
    groups: dict[str, list[Setting]] = {}
    for setting in settings:
        groups.setdefault(setting.group, []).append(setting)
    return groups


def env_block(settings: list[Setting], answers: AnswerDefaults = "values") -> str:
    """The platform part of .env.example: a section per group, each variable under its description."""
    lines: list[str] = []
    for group, members in _grouped(settings).items():
        lines += [""] if lines else []
        lines.append(f"# --- {group} ".ljust(_WIDTH, "-"))
        for setting in members:
            lines += textwrap.wrap(setting.explained, _WIDTH - 2, initial_indent="# ", subsequent_indent="# ")
            lines.append(f"{setting.variable}={_env_value(setting, answers)}")
    return "\n".join(lines) + "\n"


def _markdown_default(setting: Setting, answers: AnswerDefaults) -> str:
    if setting.default_doc:
        return setting.default_doc
    if setting.answer and answers == "words":
        return f"the `{setting.answer}` answer"
    value = _env_value(setting, answers)
    return f"`{value}`" if value else "empty"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def markdown_table(
    settings: list[Setting],
    answers: AnswerDefaults = "values",
    groups: Iterable[str] = (),
    variables: Iterable[str] = (),
) -> str:
    """A table of the settings: variable, default, meaning. With `groups` or `variables`, only the
    settings of those groups and those variables, in the order of `settings`."""
    wanted_groups, wanted_variables = set(groups), set(variables)
    unknown = (wanted_groups - {setting.group for setting in settings}) | (
        wanted_variables - {setting.variable for setting in settings}
    )
    if unknown:
        raise ValueError(f"no such group or variable: {', '.join(sorted(unknown))}")
    everything = not wanted_groups and not wanted_variables
    rows = ["| variable | default | meaning |", "| --- | --- | --- |"]
    rows += [
        f"| `{setting.variable}` | {_markdown_default(setting, answers)} | {_cell(setting.explained)} |"
        for members in _grouped(settings).values()
        for setting in members
        if everything or setting.group in wanted_groups or setting.variable in wanted_variables
    ]
    return "\n".join(rows) + "\n"


def generated_block(text: str, start: str, end: str) -> str | None:
    """The lines of `text` between the line `start` and the next line starting with `end`, without the
    blank lines around them; None unless `start` occurs once and `end` after it."""
    lines = text.splitlines(keepends=True)
    starts = [number for number, line in enumerate(lines) if line.rstrip("\n") == start]
    if len(starts) != 1:
        return None
    ends = [number for number in range(starts[0] + 1, len(lines)) if lines[number].startswith(end)]
    return "".join(lines[starts[0] + 1 : ends[0]]).strip("\n") + "\n" if ends else None
