"""The OpenAI capabilities this service serves, and the module that implements each.

They are the capabilities in release/service.env (the service's own list, read at start-up) that the
platform has OpenAI routes for; other names are listed in the metadata only. A service that wraps an
OpenAI-compatible backend (the answer backend=openai) forwards them all to BACKEND_URL; otherwise each
is the service's module app/capabilities/<module>.py (nexus_platform/_rules.py names it; `app` is
Identity.package). A capability whose module is missing or lacks a name its route calls stops start-up
with one line (ConfigError), not at a request.
A route that app/service.py serves itself stays the service's (a service written before the platform
served the capability keeps its route).
"""

import importlib
import logging
from collections.abc import Sequence
from types import ModuleType

from litestar import Router
from litestar.types import ControllerRouterHandler

from nexus_platform._config.settings import ConfigError
from nexus_platform._rules import OPENAI_CAPABILITIES
from nexus_platform.openai import _proxy as proxy
from nexus_platform.openai._routes import PATHS

__all__ = ["REQUIRED_NAMES", "implementations", "module_path"]

logger = logging.getLogger("nexus.openai")

# capability -> what its route (nexus_platform/openai/_routes.py) calls on the implementing module
REQUIRED_NAMES = {name: capability.names for name, capability in OPENAI_CAPABILITIES.items()}


def module_path(capability: str, package: str = "app") -> str:
    """Where a service implements `capability`: app/capabilities/chat_completions.py for chat.completions."""
    return f"{package.replace('.', '/')}/capabilities/{OPENAI_CAPABILITIES[capability].module}.py"


def implementations(
    service_routes: Sequence[ControllerRouterHandler],
    capabilities: tuple[str, ...],
    backend: str,
    package: str = "app",
) -> dict[str, ModuleType]:
    """Each offered OpenAI capability -> its implementing module, in the order listed, except those whose
    path `service_routes` serve; ConfigError when a module is missing or incomplete."""
    served = {route.path for route in Router(path="/", route_handlers=list(service_routes)).routes}
    found: dict[str, ModuleType] = {}
    for capability in capabilities:
        if capability not in REQUIRED_NAMES:
            continue
        if PATHS[capability] in served:
            logger.info(
                "%s: app/service.py serves %s itself; the platform's route is left out",
                capability,
                PATHS[capability],
            )
            continue
        found[capability] = proxy if backend == "openai" else _service_module(capability, package)
    return found


def _service_module(capability: str, package: str) -> ModuleType:
    path = module_path(capability, package)
    name = path.removesuffix(".py").replace("/", ".")
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as error:
        if error.name not in {name, f"{package}.capabilities"}:
            raise  # the module exists and imports something missing: that traceback is the useful one
        raise ConfigError(
            f"release/service.env offers {capability}, but {path} does not exist: add it "
            f"(it defines {', '.join(REQUIRED_NAMES[capability])}; see the README's OpenAI capabilities) "
            f"or take {capability} out of SERVICE_CAPABILITIES"
        ) from None
    missing = [each for each in REQUIRED_NAMES[capability] if not hasattr(module, each)]
    if missing:
        raise ConfigError(f"{path} implements {capability} but does not define {', '.join(missing)}")
    return module
