"""Answer rules and derived defaults of the template, exposed to copier.yml as Jinja filters.

Each `*_error` filter returns "" for a good answer and otherwise one sentence that states the rule and
shows the bad value; copier prefixes it with "Validation error for question '<name>'". The rules are
plain functions so that the tests and docs/answers.md can use them directly.

Copier itself raises a bare ValueError (and Python prints a traceback) when an answer given with
`--data` fails; in the `copier` command (never in a program that calls copier in-process),
`install_friendly_errors` turns exactly those errors into one line on stderr.
"""

from __future__ import annotations

import importlib.util
import re
import sys
import types
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jinja2 import Environment
from jinja2.ext import Extension


def _load_sibling(name: str) -> types.ModuleType:
    """extensions/<name>.py (copier loads extensions by path, so a sibling is not importable by name), once
    per template checkout: one process may render from several (copier's clones are temporary)."""
    path = Path(__file__).resolve().with_name(f"{name}.py")
    module_name = f"nexus_template_extensions{name}_{zlib.crc32(str(path).encode()):08x}"
    if module_name not in sys.modules:
        spec = importlib.util.spec_from_file_location(module_name, path)
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules[module_name] = module
    return sys.modules[module_name]


_compat = _load_sibling("_compat")


# the rules a service's platform enforces at start-up too (nexus_platform/_rules.py, loaded from its file)
_rules = _load_sibling("_platform").platform_rules()
SERVICE_NAME_RE = re.compile(_rules.KEBAB_CASE)
SEMVER_RE = re.compile(_rules.SEMVER)
OWNER_RE = SERVICE_NAME_RE
CAPABILITY_RE = re.compile(_rules.CAPABILITY)
# The grammar of github.com/distribution/reference: [domain/]path[:tag][@digest]
_DOMAIN = r"(?:localhost|[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)+)(?::[0-9]+)?"
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
IMAGE_REFERENCE_RE = re.compile(
    rf"(?:{_DOMAIN}/)?{_COMPONENT}(?:/{_COMPONENT})*"
    r"(?::[\w][\w.-]{0,127})?"
    r"(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?"
)
CPU_RE = re.compile(r"\d+(\.\d+)?")
MEMORY_RE = re.compile(r"([1-9][0-9]*)(Mi|Gi)")

SERVICE_NAME_LENGTH = (2, _rules.SERVICE_NAME_MAX)
PORT_RANGE = (1024, 65535)
GPU_COUNT_RANGE = (1, 16)
MEMORY_MIB_RANGE = (64, 1024 * 1024)
_MIB_PER_UNIT = {"Mi": 1, "Gi": 1024}
CPU_RANGE = (0.1, 256.0)
MAX_CAPABILITIES = 32
MAX_DESCRIPTION = 200

# A derived answer left to follow its sources (extensions/context.py resolves it).
AUTO = "auto"

# service-name keyword -> capabilities it most likely offers (OpenAI route names)
_CAPABILITY_HINTS: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = (
    (("llm", "chat", "ollama", "vllm", "completion"), ("chat.completions", "completions")),
    (("embed",), ("embeddings",)),
    (("tts", "speech", "voice"), ("audio.speech",)),
    (("stt", "whisper", "transcri"), ("audio.transcriptions",)),
    (("image", "img", "diffusion", "sd"), ("images.generations",)),
    (("moderation",), ("moderations",)),
    (("rerank",), ("rerank",)),
)


def service_name_error(value: Any) -> str:
    low, high = SERVICE_NAME_LENGTH
    rule = (
        f"must be kebab-case: lowercase letters, digits and single hyphens, starting with a letter, "
        f"{low}-{high} characters"
    )
    if not isinstance(value, str) or not value:
        return f"{rule} (got an empty name)"
    if not (low <= len(value) <= high) or not SERVICE_NAME_RE.fullmatch(value):
        return f"{rule} (got {value!r}, {len(value)} characters)"
    return ""


def description_error(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        return "must be one non-empty line"
    if "\n" in value or "\r" in value:
        return "must be a single line (no line breaks)"
    if len(value) > MAX_DESCRIPTION:
        return f"must be at most {MAX_DESCRIPTION} characters (got {len(value)})"
    return ""


def semver_error(value: Any) -> str:
    if not isinstance(value, str) or not SEMVER_RE.fullmatch(value):
        return f"must be a semantic version such as 1.2.3 or 1.0.0-rc.1 (got {value!r})"
    return ""


def owner_error(value: Any) -> str:
    if not isinstance(value, str) or not OWNER_RE.fullmatch(value) or len(value) > 63:
        return f"must be a team name in kebab-case, at most 63 characters (got {value!r})"
    return ""


def capabilities_error(value: Any) -> str:
    rule = 'must be a YAML list of unique dotted lowercase names such as ["chat.completions", "embeddings"]'
    if not isinstance(value, list):
        return f"{rule} (got {value!r})"
    if len(value) > MAX_CAPABILITIES:
        return f"{rule}, at most {MAX_CAPABILITIES} (got {len(value)})"
    bad = [item for item in value if not isinstance(item, str) or not CAPABILITY_RE.fullmatch(item)]
    if bad:
        return f"{rule} (bad: {', '.join(repr(item) for item in bad)})"
    if len(set(value)) != len(value):
        return f"{rule} (duplicates in {value!r})"
    return ""


def _int_range_error(value: Any, bounds: tuple[int, int], what: str) -> str:
    low, high = bounds
    if isinstance(value, bool) or not isinstance(value, int) or not (low <= value <= high):
        return f"must be {what} between {low} and {high} (got {value!r})"
    return ""


def port_error(value: Any) -> str:
    return _int_range_error(value, PORT_RANGE, "a port number (the service runs as non-root)")


def gpu_count_error(value: Any) -> str:
    return _int_range_error(value, GPU_COUNT_RANGE, "a number of GPUs")


def memory_limit_error(value: Any) -> str:
    if value == AUTO:
        return ""
    low, high = MEMORY_MIB_RANGE
    match = MEMORY_RE.fullmatch(str(value))
    if not match or not (low <= int(match.group(1)) * _MIB_PER_UNIT[match.group(2)] <= high):
        return f"must be a Kubernetes memory quantity in Mi or Gi between {low}Mi and {high // 1024}Gi, such as 512Mi or 16Gi (got {value!r})"
    return ""


def compose_memory(quantity: str) -> str:
    """The compose form of a Kubernetes quantity: 512Mi -> 512M, 16Gi -> 16G (both binary units)."""
    return quantity.removesuffix("i")


def cpu_limit_error(value: Any) -> str:
    if value == AUTO:
        return ""
    low, high = CPU_RANGE
    text = str(value)
    if not CPU_RE.fullmatch(text) or not (low <= float(text) <= high):
        return f"must be a number of cores between {low} and {high:g}, such as 1 or 0.5 (got {value!r})"
    return ""


def image_reference_error(value: Any) -> str:
    if value == AUTO:
        return ""
    if not isinstance(value, str) or len(value) > 255 or not IMAGE_REFERENCE_RE.fullmatch(value):
        return (
            "must be an image reference such as python:3.11-slim or "
            f"registry.example.com/team/image:tag[@sha256:...] (got {value!r})"
        )
    return ""


def default_description(service_name: Any) -> str:
    return f"The {service_name} service of the Nexus AI platform."


def suggested_capabilities(service_name: Any) -> list[str]:
    words = str(service_name or "").split("-")
    found: list[str] = []
    for keywords, capabilities in _CAPABILITY_HINTS:
        if any(word.startswith(keyword) for word in words for keyword in keywords):
            found.extend(capability for capability in capabilities if capability not in found)
    return found


FILTERS: dict[str, Callable[..., Any]] = {
    function.__name__: function
    for function in (
        service_name_error,
        description_error,
        semver_error,
        owner_error,
        capabilities_error,
        port_error,
        gpu_count_error,
        memory_limit_error,
        compose_memory,
        cpu_limit_error,
        image_reference_error,
        default_description,
        suggested_capabilities,
    )
}


def answer_error_message(error: BaseException, trace: types.TracebackType | None) -> str | None:
    """One line for an answer copier rejected outside the interactive prompt, else None."""
    if not isinstance(error, ValueError):
        return None
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    if text.startswith("Validation error for question"):
        return text
    required = re.fullmatch(r'Question "(\w+)" is required', text)
    if required:
        return f"{text}: give it with --data {required.group(1)}=VALUE"
    # A value copier could not cast to the question's type (e.g. port=abc): name the question.
    question = _compat.question_being_answered(trace)
    if question is not None:
        name, kind = question
        return f"Validation error for question '{name}': {text} (the answer must be a {kind})"
    return None


def install_friendly_errors() -> None:
    """In the `copier` command only: the process ends with the error, so the hook is scoped to this run."""
    previous = sys.excepthook
    if getattr(previous, "_nexus_friendly", False) or not _compat.running_copier_cli():
        return

    def hook(kind: type[BaseException], error: BaseException, trace: types.TracebackType | None) -> None:
        message = answer_error_message(error, trace)
        if message is None:
            previous(kind, error, trace)
        else:
            print(f"copier: {message}. Nothing was written.", file=sys.stderr)

    hook._nexus_friendly = True  # type: ignore[attr-defined]  # marker for later loads of this module
    sys.excepthook = hook


class RulesExtension(Extension):
    """Registers the rules and derived defaults as filters; installs the one-line error hook."""

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        environment.filters.update(FILTERS)
        install_friendly_errors()
