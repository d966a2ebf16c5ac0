"""The fleet update benchmark keeps working: a fleet of two, not a timed test."""

from __future__ import annotations

import json
import subprocess
import sys

from devtools.render import ROOT


def test_the_fleet_update_benchmark_reports_per_service_times() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench.update_fleet", "--services", "2"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (line,) = result.stdout.splitlines()
    figures = json.loads(line)
    assert figures["services"] == 2
    assert figures["wall_s_per_service"] > 0
    assert figures["cpu_s_per_service"] > 0
