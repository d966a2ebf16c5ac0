"""Readiness checks the platform provides. Add your own in app/service.py (see ServiceSpec)."""

import time

from nexus_platform._context import NexusContext
from nexus_platform._probes.readiness import CheckResult, ReadinessCheck


def http_dependency(url: str, *, name: str = "backend") -> ReadinessCheck:
    """Pass when GET `url` answers 2xx through the shared client; the latency is the observed value.

    The URL never appears in the output: /readyz is public, the backend address is not.
    """

    async def check(context: NexusContext) -> CheckResult:
        import httpx

        started = time.perf_counter()
        try:
            response = await context.http.get(url)
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
        checks["backend:responseTime"] = http_dependency(url)
    return checks
