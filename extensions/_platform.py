"""What the template takes from the nexus-ai-platform library's source next to it: its version (the pin a
service gets) and its rules (nexus_platform/_rules.py: names, versions, the OpenAI capabilities).

Copier runs the extensions and migrations from the template's checkout, where nexus-ai-platform is not
installed; `_rules.py` is standard library only, so it is loaded from its file, the one definition.
"""

from __future__ import annotations

import importlib.util
import re
import sys
import types
import zlib
from pathlib import Path

__all__ = ["PLATFORM_SOURCE", "platform_rules", "platform_version"]

PLATFORM_SOURCE = Path(__file__).resolve().parents[1] / "nexus-ai-platform" / "src" / "nexus_platform"


def platform_version() -> str:
    """The release of nexus-ai-platform that services of this template pin (released together)."""
    source = PLATFORM_SOURCE / "_version.py"
    found = re.search(r'^__version__ = "([^"]+)"$', source.read_text(encoding="utf-8"), re.MULTILINE)
    if found is None:
        raise LookupError(f"no __version__ in {source}")
    return found.group(1)


def platform_rules() -> types.ModuleType:
    """nexus_platform/_rules.py, loaded once per template checkout from its file."""
    name = f"nexus_template_platform_rules_{zlib.crc32(str(PLATFORM_SOURCE).encode()):08x}"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, PLATFORM_SOURCE / "_rules.py")
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]
