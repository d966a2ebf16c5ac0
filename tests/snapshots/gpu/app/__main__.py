# Managed by nexus-template: `copier update` replaces this file. Your code belongs in app/service.py.
"""Production entrypoint: `python -m app` serves the app on SERVICE_PORT, draining on SIGTERM."""

from nexus_platform import serve

from app.main import create_app

serve(create_app())
