"""Readiness checks the platform provides. Add your own in app/service.py (see ServiceSpec)."""

import time
from collections.abc import Mapping

from nexus_platform._context import NexusContext
from nexus_platform._probes.readiness import CheckResult, ReadinessCheck


def http_dependency(
    url: str, *, name: str = "backend", headers: Mapping[str, str] | None = None
) -> ReadinessCheck:
    """Pass when GET `url` (with `headers`) answers 2xx; the latency is the observed value.

    It goes through the readiness client (`NexusContext.readiness_http`), not the shared pool, so a busy
    service still answers its probes; the request id and trace context go with it. The URL never appears
    in the output: /readyz is public, the backend address is not.
    """

    async def check(context: NexusContext) -> CheckResult:
        import httpx

        started = time.perf_counter()
        try:
            response = await context.readiness_http.get(url, headers=headers)
        except httpx.TimeoutException:
            return CheckResult("fail", output=f"{name} did not answer in time")
        except httpx.HTTPError as error:
            return CheckResult("fail", output=f"cannot reach {name} ({type(error).__name__})")
        elapsed_ms = round((time.perf_counter() - started) * 1000, 1)
        if response.is_success:
            return CheckResult("pass", observed_value=elapsed_ms, observed_unit="ms")
        return CheckResult(
            "fail",
            observed_value=elapsed_ms,
            observed_unit="ms",
            output=f"{name} answered HTTP {response.status_code}",
        )

    return check


def platform_checks(context: NexusContext) -> dict[str, ReadinessCheck]:
    """The checks that settings switch on: the wrapped backend (the GPUs' is the gpu extra's, added by
    create_app)."""
    settings = context.settings
    checks: dict[str, ReadinessCheck] = {}
    if settings.backend_url:
        url = settings.backend_url.rstrip("/") + settings.backend_health_path
        # a key-protected backend (vLLM --api-key) guards its health path too
        key = settings.backend_api_key
        headers = {"authorization": f"Bearer {key}"} if key else None
        checks["backend:responseTime"] = http_dependency(url, headers=headers)
    return checks
