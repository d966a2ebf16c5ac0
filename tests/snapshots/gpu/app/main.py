# Managed by nexus-template: `copier update` replaces this file. Your code belongs in app/service.py.
"""The ASGI application: the platform (app.nexus) assembled around the service (app.service).

`python -m app` is the production entrypoint; `uvicorn app.main:app --port 9000` works for development.
"""

from app.nexus._factory import create_app_or_exit
from app.service import service

app = create_app_or_exit(service)
