# Managed by nexus-template: `copier update` replaces this file. Your code belongs in app/service.py.
"""The ASGI application: the platform (the nexus-ai-platform library) around the service (app/service.py).

IDENTITY is what the template answers say this service is, rewritten from them by every update: change an
answer with `copier update --defaults --data NAME=VALUE`, a setting of one deployment in the environment
(SERVICE_PORT=...; .env.example lists them). Importing this module builds nothing: `create_app()` reads
the environment and builds the app. `python -m app` serves it; `uvicorn app.main:create_app --factory
--port 18440` works for development.
"""

from pathlib import Path

from nexus_platform import Identity, NexusASGI, create_app_or_exit

from app.service import service

IDENTITY = Identity(
    name="image-generator",
    facts_file=Path(__file__).resolve().parents[1] / "release" / "service.env",
    port=18440,
    gpus=2,
    backend="none",
    registration=False,
    backend_health_path="/",
    drain_seconds=5,
    shutdown_grace_seconds=20,
    template_version="<commit>",
)


def create_app() -> NexusASGI:
    """The app of this service, from the environment (an invalid setting exits with one line, status 2)."""
    return create_app_or_exit(service, IDENTITY)
