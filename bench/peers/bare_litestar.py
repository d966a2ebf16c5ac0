"""The same Litestar app as the rendered service (its handlers, exception handlers and lifespan), without
the platform's outer ASGI layer: no request ids, no access log, no limits, no fast path. Run from the
rendered service's folder."""

from app.main import create_app

app = create_app().app
