# Managed by nexus-template: `copier update` replaces this file. Your code belongs in app/service.py.
"""The OpenAI capabilities this service serves, rendered from the answers capabilities=[] and backend=none.

Each maps to the module that implements it. Other capability names are listed in the metadata only.
"""

from types import ModuleType

# "openai": the capabilities forward to BACKEND_URL, and /v1/models is the backend's list
BACKEND = "none"
IMPLEMENTATIONS: dict[str, ModuleType] = {}
