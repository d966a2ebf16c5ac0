"""GET /metrics: the Prometheus text format (OpenMetrics by Accept), bounded labels, every platform metric."""

import asyncio
import re
from collections.abc import Callable

from litestar.testing import TestClient
from nexus_platform import CheckResult, ServiceSpec
from nexus_platform._observability.metrics import OPENMETRICS, TEXT
from nexus_platform.testing import NexusService

# name{labels} value, as both formats write samples
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_]\w*="(?:[^"\\]|\\.)*",?)*\})? (\S+)$')


def samples(text: str) -> dict[str, float]:
    """'name{labels}' -> value; every line is a comment or a well-formed sample."""
    found = {}
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        match = SAMPLE.match(line)
        assert match, f"not a sample: {line!r}"
        found[match.group(1) + (match.group(2) or "")] = float(match.group(3))
    return found


def test_metrics_count_requests_by_route_template_method_and_status_class(
    make_client: Callable[..., TestClient], nexus_service: NexusService
) -> None:
    client = make_client()
    for _ in range(3):
        assert client.post("/v1/test/echo", json={"input": "x"}).status_code == 200
    assert client.post("/v1/test/echo", json={"input": ""}).status_code == 400
    assert client.get("/health").status_code == 200
    assert client.get("/no/such/path").status_code == 404
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"] == TEXT
    found = samples(response.text)
    assert found['nexus_http_requests_total{route="/v1/test/echo",method="POST",status="2xx"}'] == 3
    assert found['nexus_http_requests_total{route="/v1/test/echo",method="POST",status="4xx"}'] == 1
    assert found['nexus_http_requests_total{route="/health",method="GET",status="2xx"}'] == 1
    assert found['nexus_http_requests_total{route="(unrouted)",method="GET",status="4xx"}'] == 1
    assert found['nexus_http_request_duration_seconds_count{route="/v1/test/echo"}'] == 4
    assert found['nexus_http_request_duration_seconds_bucket{route="/v1/test/echo",le="+Inf"}'] == 4
    assert found['nexus_http_request_bytes_total{route="/v1/test/echo"}'] == 3 * len(b'{"input":"x"}') + len(
        b'{"input":""}'
    )
    assert found['nexus_http_response_bytes_total{route="/health"}'] == len(b'{"status":"pass"}')
    assert found["nexus_http_requests_in_flight"] == 0
    assert found["nexus_http_requests_rejected_total"] == 0
    assert found["nexus_http_request_timeouts_total"] == 0
    assert found["nexus_draining"] == 0
    assert found["nexus_log_lines_dropped_total"] == 0
    [build] = [name for name in found if name.startswith("nexus_build_info{")]
    assert f'template_version="{nexus_service.identity.template_version}"' in build
    assert found[build] == 1
    assert found["process_resident_memory_bytes"] > 0


def test_openmetrics_when_accept_asks_for_it(client: TestClient) -> None:
    client.get("/health")
    response = client.get(
        "/metrics", headers={"accept": "application/openmetrics-text;version=1.0.0,*/*;q=0.1"}
    )
    assert response.headers["content-type"] == OPENMETRICS
    assert response.text.endswith("# EOF\n")
    assert "# TYPE nexus_http_requests counter" in response.text
    assert "# TYPE nexus_build info" in response.text
    assert samples(response.text.removesuffix("# EOF\n"))


def test_histogram_buckets_are_cumulative(client: TestClient) -> None:
    for _ in range(5):
        client.get("/v1/models")
    found = samples(client.get("/metrics").text)
    buckets = [
        value
        for name, value in found.items()
        if name.startswith('nexus_http_request_duration_seconds_bucket{route="/v1/models"')
    ]
    assert buckets == sorted(buckets)
    assert buckets[-1] == 5


def test_readiness_checks_are_metrics(make_client: Callable[..., TestClient]) -> None:
    async def degraded(_nexus: object) -> CheckResult:
        return CheckResult("warn", output="slow")

    client = make_client(ServiceSpec(readiness_checks={"cache:responseTime": degraded}))
    assert client.get("/readyz").status_code == 200
    found = samples(client.get("/metrics").text)
    states = {
        state: found[f'nexus_readiness_check_state{{check="cache:responseTime",state="{state}"}}']
        for state in ("pass", "warn", "fail")
    }
    assert states == {"pass": 0, "warn": 1, "fail": 0}
    assert found['nexus_readiness_check_duration_seconds{check="cache:responseTime"}'] >= 0


def test_ten_thousand_unknown_paths_do_not_grow_the_metrics(client: TestClient) -> None:
    """Labels are route templates, never raw paths: a scanner cannot blow up the series count."""
    app = client.app

    async def scan() -> None:
        async def receive() -> dict:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(_message: dict) -> None:
            pass

        for index in range(10_000):
            path = f"/scan/{index}/x{index * 7919}"
            if index % 10 == 0:  # aliases the fast path answers (//health, /health/, ...): counted as /health
                path = "/" * (index % 7 + 1) + "health" + "/" * (index % 3)
            scope = {"type": "http", "method": "GET", "path": path, "raw_path": path.encode(), "query_string": b"",
                     "headers": [(b"host", b"testserver")], "scheme": "http", "server": ("testserver", 80), "client": ("127.0.0.1", 1),
                     "root_path": "", "http_version": "1.1", "asgi": {"version": "3.0"}, "state": {}}  # fmt: skip
            await app(scope, receive, send)

    client.get("/no/such/path")
    client.get("/health")
    client.get("/metrics")  # a scrape is counted once it is done: the second one shows the first
    before = samples(client.get("/metrics").text)
    asyncio.run(scan())
    after = samples(client.get("/metrics").text)
    assert set(after) == set(before)
    assert after['nexus_http_requests_total{route="(unrouted)",method="GET",status="4xx"}'] == 1 + 9_000
    assert after['nexus_http_requests_total{route="/health",method="GET",status="2xx"}'] == 1 + 1_000
    assert len(client.get("/metrics").content) < 64_000


def test_metrics_skip_the_limit_and_can_be_switched_off(
    make_client: Callable[..., TestClient], nexus_service: NexusService
) -> None:
    assert "/metrics" in nexus_service.create_app().fast_routes  # before the limiter, like probes
    assert "/metrics" in make_client().get("/schema/openapi.json").json()["paths"]
    off = make_client(METRICS_ENABLED="false")
    assert off.get("/metrics").status_code == 404
    assert "/metrics" not in off.get("/schema/openapi.json").json()["paths"]
