"""Readiness: every check runs concurrently with its own timeout; the result is cached briefly.

A check whose status changes (pass, warn, fail) is logged at WARNING once per change; the last status and
duration of each check are metrics (`families`).

The body follows the IETF draft "Health Check Response Format for HTTP APIs": status pass/warn/fail and
`checks` keyed "component:measurement". 503 only when a check fails; `warn` keeps the service in rotation.
A check that raises or times out is a failed check with a reason; the reason never carries exception text.
"""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Literal

import msgspec

from nexus_platform._observability.logs import timestamp
from nexus_platform._observability.metrics import Family

if TYPE_CHECKING:
    from nexus_platform._context import NexusContext

Status = Literal["pass", "warn", "fail"]
_RANK: dict[str, int] = {"pass": 0, "warn": 1, "fail": 2}
HEALTH_JSON = "application/health+json"
logger = logging.getLogger("nexus.readiness")


class CheckResult(msgspec.Struct, frozen=True):
    """What a readiness check returns. `output` is a short reason, shown to callers of /readyz."""

    status: Status = "pass"
    observed_value: float | int | str | None = None
    observed_unit: str | None = None
    output: str | None = None


ReadinessCheck = Callable[["NexusContext"], Awaitable[CheckResult]]


class CheckReport(msgspec.Struct, omit_defaults=True, rename="camel"):
    status: Status
    time: str
    observed_value: float | int | str | None = None
    observed_unit: str | None = None
    output: str | None = None


class ReadinessReport(msgspec.Struct):
    status: Status
    checks: dict[str, list[CheckReport]]


class ReadinessAnswer(msgspec.Struct, frozen=True):
    status: Status
    status_code: int
    body: bytes


class Readiness:
    """Runs the checks at most once per cache period; concurrent callers share one run."""

    def __init__(
        self,
        checks: Mapping[str, ReadinessCheck],
        context: "NexusContext",
        *,
        timeout: float,
        cache_seconds: float,
    ) -> None:
        self._checks = dict(checks)
        self._context = context
        self._timeout = timeout
        self._cache_seconds = cache_seconds
        self._cached: ReadinessAnswer | None = None
        self._expires = 0.0
        self._running: asyncio.Future[ReadinessAnswer] | None = None
        # check name -> (last status, seconds it took); a check appears once it has run
        self.last: dict[str, tuple[Status, float]] = {}
        # called with the new status whenever a run's status differs from the previous run's (e.g. registration)
        self.on_change: list[Callable[[Status], object]] = []

    @property
    def names(self) -> list[str]:
        return list(self._checks)

    async def answer(self) -> ReadinessAnswer:
        if self._context.draining:
            return _draining_answer()
        if self._cached is not None and time.monotonic() < self._expires:
            return self._cached
        if self._running is None:
            self._running = asyncio.ensure_future(self._run())
            self._running.add_done_callback(self._finished)
        return await asyncio.shield(self._running)

    def _finished(self, future: "asyncio.Future[ReadinessAnswer]") -> None:
        self._running = None
        if not future.cancelled() and future.exception() is None:
            previous, self._cached = self._cached, future.result()
            self._expires = time.monotonic() + self._cache_seconds
            if previous is None or previous.status != self._cached.status:
                for callback in self.on_change:
                    callback(self._cached.status)

    async def _run(self) -> ReadinessAnswer:
        names = list(self._checks)
        results = await asyncio.gather(*(self._run_one(name) for name in names))
        return render(dict(zip(names, results, strict=True)))

    async def _run_one(self, name: str) -> CheckResult:
        started = time.perf_counter()
        result = await self._check(self._checks[name])
        previous = self.last.get(name)
        self.last[name] = (result.status, time.perf_counter() - started)
        # the first result is news when it is not a pass; later ones when they differ from the last
        if (previous[0] if previous is not None else "pass") != result.status:
            logger.warning(
                "readiness check %s changed from %s to %s%s",
                name,
                previous[0] if previous is not None else "(not run)",
                result.status,
                f": {result.output}" if result.output else "",
                extra={"check": name, "status": result.status},
            )
        return result

    async def _check(self, check: ReadinessCheck) -> CheckResult:
        try:
            async with asyncio.timeout(self._timeout):
                result = await check(self._context)
        except TimeoutError:
            return CheckResult("fail", output=f"timed out after {self._timeout:g}s")
        except Exception as error:  # noqa: BLE001 - a failing check is a result, never a 500
            return CheckResult("fail", output=f"check raised {type(error).__name__}")
        if not isinstance(result, CheckResult):
            return CheckResult("fail", output="check returned no CheckResult")
        return result

    def families(self) -> list[Family]:
        """The last status (one series per state, 1 for the current one) and duration of every check."""
        states = [
            ("", (("check", name), ("state", state)), int(state == status))
            for name, (status, _) in self.last.items()
            for state in _RANK
        ]
        durations = [("", (("check", name),), seconds) for name, (_, seconds) in self.last.items()]
        return [
            Family("nexus_readiness_check_state", "gauge", "Last result of each readiness check (1 for its state).", states),
            Family("nexus_readiness_check_duration_seconds", "gauge", "How long each readiness check last took.", durations),
        ]  # fmt: skip


def render(results: Mapping[str, CheckResult]) -> ReadinessAnswer:
    now = timestamp(time.time())
    checks = {
        name: [CheckReport(result.status, now, result.observed_value, result.observed_unit, result.output)]
        for name, result in results.items()
    }
    status: Status = max(
        (result.status for result in results.values()), key=_RANK.__getitem__, default="pass"
    )
    body = msgspec.json.encode(ReadinessReport(status=status, checks=checks))
    return ReadinessAnswer(status, 503 if status == "fail" else 200, body)


def _draining_answer() -> ReadinessAnswer:
    return render({"shutdown": CheckResult("fail", output="draining: the service is shutting down")})
