"""The benchmark harness keeps working: a smoke run (a second per app and endpoint), not a timed test."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench.run import ENDPOINTS
from devtools.render import ROOT

pytestmark = pytest.mark.xdist_group("bench")


def smoke_run(*arguments: str, timeout: float) -> subprocess.CompletedProcess[str]:
    """`python -m <arguments>` (a benchmark's smoke run) from the repository; skips without wrk and taskset,
    fails with its output when it fails."""
    if shutil.which("wrk") is None or shutil.which("taskset") is None:
        pytest.skip("the benchmark needs wrk and taskset (apt-get install wrk; .ci/run does)")
    result = subprocess.run(
        [sys.executable, "-m", *arguments],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def test_bench_smoke_run_measures_every_app_and_endpoint(tmp_path: Path) -> None:
    smoke_run("bench", "--smoke", "--output", str(tmp_path), timeout=900)
    results = json.loads((tmp_path / "latest.json").read_text())
    assert list(results["medians"]) == list(results["apps"])
    assert len(results["apps"]) == 6
    for app, paths in results["medians"].items():
        assert list(paths) == ENDPOINTS
        for path, sample in paths.items():
            assert sample["rps"] > 0, (app, path)
            assert sample["non_2xx"] == 0, (app, path)  # every app answered every request with success
    assert results["cold_start_seconds"]["production"] > 0
    assert results["copier"]["copy_seconds"] > 0
    assert "| target | measured | met |" in (tmp_path / "latest.md").read_text()


def test_bench_proxy_smoke_run_measures_the_wrapper_and_its_streams(tmp_path: Path) -> None:
    """The proxy benchmark's harness (bench/proxy.py) end to end, without LiteLLM (its virtualenv is
    about 600 MB from PyPI and it starts in 30 s or more: the full run alone measures it)."""
    smoke_run("bench.proxy", "--smoke", "--output", str(tmp_path), timeout=600)
    results = json.loads((tmp_path / "proxy.json").read_text())
    assert list(results["medians"]) == ["wrapper", "direct"]
    for target, labels in results["medians"].items():
        assert list(labels) == ["chat c=4", "chat c=32", "chat c=64", "stream c=32"], target
        for label, sample in labels.items():
            assert sample["rps"] > 0, (target, label)
            # every request answered with success
            assert sample["non_2xx"] == sample["errors"] == 0, (target, label)
    assert results["ratios"]["wrapper c=64 / wrapper c=4"] > 0
    streams = results["streams"]["wrapper"]
    assert streams["completed"] == streams["streams"] == 100  # each stream ended with [DONE]
    assert streams["rss_peak_mib"] >= streams["rss_before_mib"] > 0
    assert "| target | measured | met |" in (tmp_path / "proxy.md").read_text()


def test_bench_gateway_smoke_run_measures_the_gateway_against_a_direct_call(tmp_path: Path) -> None:
    """The gateway benchmark's harness (bench/gateway.py) end to end, without LiteLLM (the full run alone
    measures it): a rendered gateway routes wrk's chats and streams, fast and paced, to the fake upstream."""
    samples = tmp_path / "gateway.json"
    result = smoke_run("bench.gateway", "--smoke", "--json", str(samples), timeout=600)
    results = json.loads(samples.read_text())
    for target in ("direct", "gateway"):
        for kind in ("chat", "stream", "paced"):
            sample = results[f"{target} {kind} 4"]
            assert sample["rps"] > 0, (target, kind)
            assert sample["non_2xx"] == 0, (target, kind)  # every request routed and answered
    assert "streamed events/s gateway/direct" in result.stdout
