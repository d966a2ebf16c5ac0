# Managed by nexus-template: `copier update` replaces this file. Your code belongs in app/service.py.
"""Production entrypoint: `python -m app` serves the app on SERVICE_PORT with graceful shutdown."""

from app.nexus._server import main

main()
