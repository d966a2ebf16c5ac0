"""A rendered service's /metrics as Prometheus sees it: a real Prometheus server scrapes a live service
every second while known traffic is sent, and PromQL answers match that traffic. The formats are also
checked with the official client library's strict parsers."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_text

from devtools.live import LiveService, free_port, wait_for_health

# the robustness tests' fixture, here as `_slow_service`: the default service with a /v1/slow endpoint
from tests.test_robustness import service as _slow_service  # noqa: F401

pytestmark = pytest.mark.xdist_group("metrics")

PROMETHEUS = shutil.which("prometheus")
OK, BAD, UNKNOWN = 40, 10, 5


@pytest.fixture
def live(rendered, tmp_path: Path) -> Iterator[LiveService]:
    service = LiveService(
        rendered("default"), tmp_path, environment={"DRAIN_SECONDS": "0", "LOG_LEVEL": "WARNING"}
    )
    yield service
    service.stop()


@pytest.fixture
def prometheus(live: LiveService, tmp_path: Path) -> Iterator[str]:
    with scraping(live, tmp_path) as url:
        yield url


@contextmanager
def scraping(live: LiveService, tmp_path: Path) -> Iterator[str]:
    """A real Prometheus scraping `live` every second: its URL."""
    if PROMETHEUS is None:
        pytest.skip("needs Debian's prometheus (apt-get install prometheus; .ci/run does)")
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: service\n    scrape_interval: 1s\n"
        f"    static_configs:\n      - targets: ['127.0.0.1:{live.port}']\n"
    )
    log = (tmp_path / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_health(
            f"{url}/-/ready",
            died=lambda: process.poll() is not None,
            details=lambda: (tmp_path / "prometheus.log").read_text()[-2000:],
        )
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def query(prometheus: str, promql: str) -> float | None:
    """The single value of an instant query, None while it has no result."""
    body = httpx.get(f"{prometheus}/api/v1/query", params={"query": promql}, timeout=5).json()
    assert body["status"] == "success", body
    result = body["data"]["result"]
    assert len(result) <= 1, result
    return float(result[0]["value"][1]) if result else None


def eventually(prometheus: str, promql: str, expected: float, timeout: float = 30) -> float | None:
    deadline = time.monotonic() + timeout
    while (value := query(prometheus, promql)) is None or abs(value - expected) > 1e-9:
        if time.monotonic() > deadline:
            return value
        time.sleep(0.5)
    return value


def send_known_traffic(url: str) -> None:
    with httpx.Client(base_url=url, timeout=10) as client:
        for _ in range(OK):
            assert client.post("/v1/echo", json={"input": "hello"}).status_code == 200
        for _ in range(BAD):
            assert client.post("/v1/echo", json={"input": ""}).status_code == 400
        for index in range(UNKNOWN):
            assert client.get(f"/unknown/{index}").status_code == 404


def test_prometheus_scrapes_request_counts_and_error_rates_that_match_the_traffic(
    live: LiveService, prometheus: str
) -> None:
    assert eventually(prometheus, 'up{job="service"}', 1) == 1, "Prometheus never scraped the service"
    send_known_traffic(live.url)
    echo = 'nexus_http_requests_total{job="service",route="/v1/echo"}'
    assert eventually(prometheus, f"sum({echo})", OK + BAD) == OK + BAD
    error_rate = query(prometheus, f'sum({echo[:-1]},status!="2xx"}}) / sum({echo})')
    assert error_rate == pytest.approx(BAD / (OK + BAD))
    assert query(prometheus, f'sum({echo[:-1]},status="4xx",method="POST"}})') == BAD
    unrouted = 'sum(nexus_http_requests_total{route="(unrouted)",status="4xx"})'
    assert eventually(prometheus, unrouted, UNKNOWN) == UNKNOWN
    assert query(prometheus, 'sum(nexus_http_request_duration_seconds_count{route="/v1/echo"})') == OK + BAD
    p99 = query(
        prometheus,
        'histogram_quantile(0.99, sum by (le) (nexus_http_request_duration_seconds_bucket{route="/v1/echo"}))',
    )
    assert p99 is not None
    assert 0 < p99 <= 1, p99
    assert query(prometheus, 'nexus_build_info{job="service"}') == 1
    # the scrapes themselves: counted like the probes, never as errors
    assert query(prometheus, 'sum(nexus_http_requests_total{route="/metrics",status!="2xx"})') in (None, 0)


def test_both_formats_pass_the_official_parsers(rendered, tmp_path: Path) -> None:
    """A service with registration (state "disabled" here), a failing readiness check and traffic."""
    service = LiveService(
        rendered("registry"),
        tmp_path,
        environment={
            "DRAIN_SECONDS": "0",
            "LOG_LEVEL": "WARNING",
            "BACKEND_URL": f"http://127.0.0.1:{free_port()}",
        },
    )
    try:
        send_known_traffic(service.url)
        httpx.get(f"{service.url}/readyz", timeout=5)
        text = httpx.get(f"{service.url}/metrics", timeout=5)
        assert text.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
        families = {family.name: family for family in parse_text(text.text)}
        om = httpx.get(
            f"{service.url}/metrics",
            headers={"accept": "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"},
            timeout=5,
        )
        assert om.headers["content-type"].startswith("application/openmetrics-text; version=1.0.0")
        om_families = {family.name: family for family in parse_openmetrics(om.text)}
    finally:
        service.stop()
    # the text format has no info type: nexus_build_info is a gauge there
    assert set(families) - {"nexus_build_info"} == set(om_families) - {"nexus_build"}
    assert om_families["nexus_build"].type == "info"
    assert om_families["nexus_http_request_duration_seconds"].type == "histogram"
    requests = {
        (sample.labels["route"], sample.labels["status"]): sample.value
        for sample in om_families["nexus_http_requests"].samples
    }
    assert requests[("/v1/echo", "2xx")] == OK
    assert requests[("/v1/echo", "4xx")] == BAD
    [state] = [sample for sample in families["nexus_registration_state"].samples if sample.value == 1]
    assert state.labels == {"state": "disabled"}
    assert {
        "nexus_readiness_check_state",
        "nexus_draining",
        "nexus_log_lines_dropped",
        "process_cpu_seconds",
    } <= set(families)


def test_limit_rejections_timeouts_and_in_flight_are_counted(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Saturate a service (limit 2, timeout 1 s): /metrics answers on the fast path meanwhile and shows
    the requests in flight; afterwards the rejections and timeouts match what happened."""
    service = LiveService(
        request.getfixturevalue("_slow_service"),
        tmp_path,
        environment={"DRAIN_SECONDS": "0", "MAX_CONCURRENT_REQUESTS": "2", "REQUEST_TIMEOUT_SECONDS": "1"},
    )

    def scrape() -> dict[str, float]:
        text = httpx.get(f"{service.url}/metrics", timeout=5).text
        return {
            f"{sample.name}{sorted(sample.labels.items())}": sample.value
            for family in parse_text(text)
            for sample in family.samples
        }

    try:
        with ThreadPoolExecutor(2) as pool:
            slow = [
                pool.submit(httpx.get, f"{service.url}/v1/slow", params={"seconds": 5}, timeout=10)
                for _ in range(2)
            ]
            deadline = time.monotonic() + 10
            while scrape()["nexus_http_requests_in_flight[]"] < 2:
                assert time.monotonic() < deadline, "the slow requests never ran"
                time.sleep(0.05)
            rejected = [
                httpx.post(f"{service.url}/v1/echo", json={"input": "x"}, timeout=5) for _ in range(3)
            ]
            assert [response.status_code for response in rejected] == [503, 503, 503]
            assert [future.result().status_code for future in slow] == [504, 504]
        found = scrape()
    finally:
        service.stop()
    assert found["nexus_http_requests_rejected_total[]"] == 3
    assert found["nexus_http_request_timeouts_total[]"] == 2
    assert found["nexus_http_requests_in_flight[]"] == 0
    slow_route = "[('method', 'GET'), ('route', '/v1/slow'), ('status', '5xx')]"
    assert found[f"nexus_http_requests_total{slow_route}"] == 2
    assert (
        found["nexus_http_requests_total[('method', 'POST'), ('route', '(unrouted)'), ('status', '5xx')]"]
        == 3
    )


def test_prometheus_scrapes_per_model_tokens_and_time_to_first_token(rendered, tmp_path: Path) -> None:
    """The LLM metrics of a service with its own chat implementation (the example's usage: the words of
    the prompt and of its answer), as a real Prometheus stores them."""
    service = LiveService(
        rendered("ai-local"), tmp_path, environment={"DRAIN_SECONDS": "0", "LOG_LEVEL": "WARNING"}
    )
    try:
        with scraping(service, tmp_path) as prometheus:
            client = openai.OpenAI(base_url=f"{service.url}/v1", api_key="x", max_retries=0)
            hello: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hello there"}]
            for _ in range(3):  # "You said: hello there": 4 completion tokens, 2 prompt tokens
                client.chat.completions.create(model="example-chat", messages=hello)
            for _ in range(2):
                stream = client.chat.completions.create(
                    model="example-chat", messages=hello, stream=True, stream_options={"include_usage": True}
                )
                assert sum(1 for _ in stream) > 4
            model = 'model="example-chat"'
            expected = {
                f'nexus_llm_tokens_total{{{model},kind="completion"}}': 5 * 4,
                f'nexus_llm_tokens_total{{{model},kind="prompt"}}': 5 * 2,
                f'nexus_llm_requests_total{{{model},outcome="ok"}}': 5,
                f"nexus_llm_time_to_first_token_seconds_count{{{model}}}": 2,
                f'nexus_llm_time_to_first_token_seconds_bucket{{{model},le="+Inf"}}': 2,
            }
            found = {promql: eventually(prometheus, promql, value) for promql, value in expected.items()}
            assert found == expected
            # a time to first token, not the whole stream's: within the request, and positive
            first = query(prometheus, f"nexus_llm_time_to_first_token_seconds_sum{{{model}}}")
            assert first is not None
            assert 0 < first < 10
    finally:
        service.stop()
