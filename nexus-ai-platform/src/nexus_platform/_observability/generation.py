"""What a model request produced: its model, token counts, time to first token and inter-token latency, for
the access line and the LLM metrics on /metrics (the figures vLLM, TGI and LiteLLM operators watch).

The OpenAI routes start a `Generation` for each request (nexus_platform.openai._routes) and hand it the
`usage` of the answer — the service's own implementation's, or the backend's for a wrapper, streamed
usage included (stream_options.include_usage) — and each event of a stream. The outer ASGI layer finishes
it with the request (nexus_platform._edge.observe): `LlmMetrics` counts it under its model and outcome.

Labels stay bounded: a model is its own label value only when the service lists it (GET /v1/models);
anything else a client names counts as "(other)". A stream's events are its tokens as far as timing goes
(OpenAI's chunks carry a token or a few each).
"""

import time
from bisect import bisect_left
from collections.abc import Callable, Collection
from typing import Any

from nexus_platform._observability.metrics import Family, Labels, histogram_samples

__all__ = ["OTHER_MODEL", "Generation", "LlmMetrics"]

OTHER_MODEL = "(other)"
# seconds to the first event of a stream: a warm model answers in tens of milliseconds, a cold load in minutes
TTFT_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
# seconds between two events of a stream
ITL_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 1.0, 2.5)


class Generation:
    """One model request, while it runs: set by the route, read when the request ends."""

    __slots__ = (
        "completion_tokens",
        "first_event",
        "last_event",
        "metrics",
        "model",
        "prompt_tokens",
        "started",
    )

    def __init__(self, model: str, started: float, metrics: "LlmMetrics | None") -> None:
        self.model = model
        self.started = started  # time.monotonic() of the request's arrival
        self.metrics = metrics
        self.prompt_tokens: int | None = None
        self.completion_tokens: int | None = None
        self.first_event: float | None = None
        self.last_event: float | None = None

    def count(self, usage: Any) -> None:
        """Take the token counts of an answer's `usage` (OpenAI's, or embeddings' without completion)."""
        if usage is None:
            return
        self.prompt_tokens = getattr(usage, "prompt_tokens", None)
        self.completion_tokens = getattr(usage, "completion_tokens", None)

    def event(self) -> None:
        """A stream sent an event (a token or a few)."""
        now = time.monotonic()
        if self.first_event is None:
            self.first_event = now
        elif self.metrics is not None and self.last_event is not None:
            self.metrics.inter_event(self.model, now - self.last_event)
        self.last_event = now

    @property
    def first_token_seconds(self) -> float | None:
        return None if self.first_event is None else self.first_event - self.started


class _ModelSeries:
    __slots__ = ("completion_tokens", "itl", "itl_sum", "outcomes", "prompt_tokens", "ttft", "ttft_sum")

    def __init__(self) -> None:
        self.outcomes: dict[str, int] = {}
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.ttft = [0] * (len(TTFT_BUCKETS) + 1)
        self.ttft_sum = 0.0
        self.itl = [0] * (len(ITL_BUCKETS) + 1)
        self.itl_sum = 0.0


class LlmMetrics:
    """Requests, tokens, time to first token and inter-token latency per model (its label bounded to
    `listed()`, the model ids the service lists, and OTHER_MODEL)."""

    def __init__(self, listed: Callable[[], Collection[str]]) -> None:
        self._listed = listed
        self.series: dict[str, _ModelSeries] = {}

    def _series(self, model: str) -> _ModelSeries:
        label = model if model in self._listed() else OTHER_MODEL
        series = self.series.get(label)
        if series is None:
            series = self.series[label] = _ModelSeries()
        return series

    def inter_event(self, model: str, seconds: float) -> None:
        series = self._series(model)
        series.itl[bisect_left(ITL_BUCKETS, seconds)] += 1
        series.itl_sum += seconds

    def finish(self, generation: Generation, status: int, outcome: str | None) -> None:
        series = self._series(generation.model)
        result = outcome or ("ok" if status < 400 else f"{status // 100}xx")
        series.outcomes[result] = series.outcomes.get(result, 0) + 1
        series.prompt_tokens += generation.prompt_tokens or 0
        series.completion_tokens += generation.completion_tokens or 0
        first = generation.first_token_seconds
        if first is not None:
            series.ttft[bisect_left(TTFT_BUCKETS, first)] += 1
            series.ttft_sum += first

    def families(self) -> list[Family]:
        requests: list[tuple[str, Labels, float]] = []
        tokens: list[tuple[str, Labels, float]] = []
        ttft: list[tuple[str, Labels, float]] = []
        itl: list[tuple[str, Labels, float]] = []
        for model, series in self.series.items():
            labels: Labels = (("model", model),)
            requests += [
                ("_total", (*labels, ("outcome", outcome)), n) for outcome, n in series.outcomes.items()
            ]
            tokens += [
                ("_total", (*labels, ("kind", "prompt")), series.prompt_tokens),
                ("_total", (*labels, ("kind", "completion")), series.completion_tokens),
            ]
            ttft += histogram_samples(labels, TTFT_BUCKETS, series.ttft, series.ttft_sum)
            itl += histogram_samples(labels, ITL_BUCKETS, series.itl, series.itl_sum)
        return [
            Family("nexus_llm_requests", "counter", "Model requests by model and outcome (ok, 4xx, 5xx, or why the platform ended it).", requests),
            Family("nexus_llm_tokens", "counter", "Tokens by model and kind (prompt, completion), from the answers' usage.", tokens),
            Family("nexus_llm_time_to_first_token_seconds", "histogram", "Seconds from a streamed request's arrival to its first event, by model.", ttft),
            Family("nexus_llm_inter_token_latency_seconds", "histogram", "Seconds between two events of a stream, by model.", itl),
        ]  # fmt: skip
