"""run_blocking's pool follows the app's lifespan: an app that runs twice (two TestClients of one app, as
a service's own tests often do) gets its threads again."""

from __future__ import annotations

import threading

from litestar import Request, get
from litestar.testing import TestClient
from nexus_platform import nexus_of, run_blocking
from nexus_platform.testing import NexusService


@get("/v1/test-blocking")
async def blocking(request: Request) -> dict[str, str]:
    return {"thread": await run_blocking(nexus_of(request), lambda: threading.current_thread().name)}


def test_an_app_that_runs_twice_runs_blocking_work_both_times(nexus_service: NexusService) -> None:
    app = nexus_service.create_app(nexus_service.with_routes(blocking), {"LOG_LEVEL": "WARNING"})
    for _ in range(2):
        with TestClient(app) as client:
            response = client.get("/v1/test-blocking")
            assert response.status_code == 200, response.text
            assert response.json()["thread"].startswith("nexus-blocking")
