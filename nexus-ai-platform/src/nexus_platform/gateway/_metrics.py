"""The gateway's metrics, per upstream service, instance and model, in the platform's format
(nexus_platform._observability.metrics: plain counters updated on the event loop, formatted at scrape).

    nexus_gateway_requests_total{service,instance,model,outcome}     outcome: ok (2xx), client_error (4xx),
                                                                     upstream_error (5xx answered),
                                                                     unavailable (no instance answered),
                                                                     broken (a stream cut after it began)
    nexus_gateway_attempts_total{service,instance,model,result}      every try of an instance: answered,
                                                                     refused (connection), unavailable (503),
                                                                     failed (broke before answering)
    nexus_gateway_request_duration_seconds{service,instance,model}   histogram, to the response's end
    nexus_gateway_time_to_first_byte_seconds{service,instance,model} histogram, to the first body chunk
                                                                     (the first token of a stream)
    nexus_gateway_tokens_total{service,model,kind}                   prompt / completion, from the usage of
                                                                     non-streamed answers
    nexus_gateway_instances{service}                                 gauge: routable instances

The instance label is `<service>/<instance id>`: ids change with each start, so old series stop growing
(a Prometheus recording rule by service and model is the long-term view).
"""

from bisect import bisect_left
from collections.abc import Callable, Iterable

from nexus_platform._observability.metrics import BUCKETS, Family, Labels, _number

__all__ = ["GatewayMetrics"]

_Key = tuple[str, str, str]


def _histogram(series: dict[_Key, list[float]]) -> list[tuple[str, Labels, float]]:
    samples: list[tuple[str, Labels, float]] = []
    for (service, instance, model), entry in series.items():
        labels: Labels = (("service", service), ("instance", instance), ("model", model))
        cumulative = 0.0
        for bound, count in zip((*BUCKETS, float("inf")), entry[2:], strict=True):
            cumulative += count
            samples.append(("_bucket", (*labels, ("le", _number(float(bound)))), cumulative))
        samples += [("_count", labels, entry[0]), ("_sum", labels, entry[1])]
    return samples


def _observe(series: dict[_Key, list[float]], key: _Key, seconds: float) -> None:
    entry = series.get(key)
    if entry is None:
        entry = series[key] = [0, 0.0] + [0] * (len(BUCKETS) + 1)
    entry[0] += 1
    entry[1] += seconds
    entry[2 + bisect_left(BUCKETS, seconds)] += 1


class GatewayMetrics:
    def __init__(self, instances: Callable[[], dict[str, int]]) -> None:
        self._instances = instances  # service -> routable instances, read at scrape time
        self.requests: dict[tuple[str, str, str, str], int] = {}
        self.attempts: dict[tuple[str, str, str, str], int] = {}
        self.tokens: dict[tuple[str, str, str], int] = {}
        self.durations: dict[_Key, list[float]] = {}
        self.first_bytes: dict[_Key, list[float]] = {}

    def attempt(self, service: str, instance: str, model: str, result: str) -> None:
        key = (service, instance, model, result)
        self.attempts[key] = self.attempts.get(key, 0) + 1

    def first_byte(self, service: str, instance: str, model: str, seconds: float) -> None:
        _observe(self.first_bytes, (service, instance, model), seconds)

    def finished(self, service: str, instance: str, model: str, outcome: str, seconds: float) -> None:
        key = (service, instance, model, outcome)
        self.requests[key] = self.requests.get(key, 0) + 1
        _observe(self.durations, (service, instance, model), seconds)

    def used(self, service: str, model: str, prompt: int, completion: int) -> None:
        for kind, count in (("prompt", prompt), ("completion", completion)):
            key = (service, model, kind)
            self.tokens[key] = self.tokens.get(key, 0) + count

    def families(self) -> list[Family]:
        def labelled(
            names: tuple[str, ...], series: Iterable[tuple[tuple[str, ...], int]]
        ) -> list[tuple[str, Labels, float]]:
            return [("_total", tuple(zip(names, key, strict=True)), value) for key, value in series]

        route = ("service", "instance", "model")
        return [
            Family("nexus_gateway_requests", "counter", "Requests forwarded, by upstream service, instance, model and outcome.", labelled((*route, "outcome"), self.requests.items())),
            Family("nexus_gateway_attempts", "counter", "Tries of an instance, by result (answered, refused, unavailable, failed).", labelled((*route, "result"), self.attempts.items())),
            Family("nexus_gateway_request_duration_seconds", "histogram", "Forwarded request duration, to the response's end.", _histogram(self.durations)),
            Family("nexus_gateway_time_to_first_byte_seconds", "histogram", "Time to the first body chunk (first token of a stream).", _histogram(self.first_bytes)),
            Family("nexus_gateway_tokens", "counter", "Tokens of non-streamed answers (their usage), by service, model and kind.", labelled(("service", "model", "kind"), self.tokens.items())),
            Family("nexus_gateway_instances", "gauge", "Routable instances by service.", [("", (("service", name),), count) for name, count in self._instances().items()]),
        ]  # fmt: skip
