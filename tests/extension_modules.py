"""The template's extensions (extensions/*.py) as modules: copier loads them by path, and so do the tests."""

from __future__ import annotations

import importlib.util
import sys
import types

from devtools.render import ROOT

__all__ = ["load_extension"]


def load_extension(name: str) -> types.ModuleType:
    """extensions/<name>.py, loaded afresh under the module name template_<name>."""
    spec = importlib.util.spec_from_file_location(f"template_{name}", ROOT / "extensions" / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module
