# Managed by nexus-template: `copier update` replaces this file. Your code belongs in app/service.py.
"""The platform's modules before they were private: `app.nexus.config` still imports, for one release.

Up to v0.2.0 the modules of app.nexus had public names and the docs showed deep imports
(`from app.nexus.config import SECRET`). They are `_` modules now (`app.nexus._config`). So that a service
importing the old names keeps working after the update, importing one gives a module with the private
module's names and a DeprecationWarning that says what to import instead. The aliases go in v0.4.0.
"""

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import warnings
from collections.abc import Sequence
from types import ModuleType

__all__ = ["install"]

_PACKAGES = ("app.nexus", "app.nexus.openai")


class _MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        package, _, name = fullname.rpartition(".")
        if package not in _PACKAGES or name.startswith("_"):
            return None
        if importlib.util.find_spec(f"{package}._{name}") is None:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def exec_module(self, module: ModuleType) -> None:
        package, _, name = module.__name__.rpartition(".")
        private = importlib.import_module(f"{package}._{name}")
        warnings.warn(
            f"{module.__name__} is internal and now named {private.__name__}: import the public names from "
            f"{package} itself (its __all__); the old name goes in v0.4.0",
            DeprecationWarning,
            stacklevel=2,
        )
        module.__dict__.update(
            {key: value for key, value in vars(private).items() if not key.startswith("__")}
        )


def install() -> None:
    """Put the aliases on the import path (once)."""
    if not any(isinstance(finder, _MovedModules) for finder in sys.meta_path):
        sys.meta_path.append(_MovedModules())
