"""Time `update-all --commit` (no tests) over a fleet of services at mixed template versions.

    python -m bench.update_fleet                  # fleets of 12 and 20 services (a few minutes)
    python -m bench.update_fleet --services 3     # a quick check of the harness
    python -m bench.update_fleet --profile        # also: where the time goes (cProfile, cumulative)
    python -m bench.update_fleet --empty-cache    # without the answers earlier runs cached (pip, uv)

The fleet: a template history built from the working tree (v1.0.0, v1.1.0, v1.2.0), services rendered
alternately at v1.0.0 and v1.1.0 with a service edit each, a release that changes a template-owned
file, renames one and removes one. Wall time depends on the machine's load; CPU time (this process and
its git children) is the steadier figure, and both are printed per service. By default the cache of
resolutions and lock refreshes is the machine's (`~/.cache/nexus-template`), as in a team's second run;
`--empty-cache` measures a first run (one pip resolution and one uv lock per distinct requirement set).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path

from nexus_template.updating import update_all
from tests.histories import append_line, commit_all, generate, new_history, new_monorepo

K8S = "template/{% if kubernetes %}deploy{% endif %}/kubernetes"


def _cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def build_fleet(folder: Path, count: int) -> Path:
    """A monorepo of `count` services at v1.0.0/v1.1.0, edited and committed; the template at v1.2.0."""
    history = new_history(folder / "template")
    history.append("template/app/healthcheck.py.jinja", "\nIN_V1_1 = True\n")
    history.release("v1.1.0")
    monorepo = new_monorepo(folder / "platform")
    for index in range(count):
        service = generate(history.path, monorepo, f"svc-{index:02d}", ("v1.0.0", "v1.1.0")[index % 2])
        append_line(service / "app/service.py", f"# service {index}'s own code")
    commit_all(monorepo, "service edits")
    history.append("template/app/__main__.py", "\nIN_V1_2 = True\n")
    history.rename(f"{K8S}/service.yaml.jinja", f"{K8S}/svc.yaml.jinja")
    history.remove("template/app/_legacy.py")
    history.release("v1.2.0")
    return monorepo


def measure(count: int, *, profile: bool, empty_cache: bool) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="bench-update-") as temp:
        if empty_cache:
            os.environ["NEXUS_TEMPLATE_CACHE"] = str(Path(temp) / "cache")
        monorepo = build_fleet(Path(temp), count)
        profiler = cProfile.Profile() if profile else None
        began, cpu = time.monotonic(), _cpu_seconds()
        if profiler:
            profiler.enable()
        results = update_all(monorepo / "services", commit=True, progress=lambda line: None)
        if profiler:
            profiler.disable()
        wall, cpu = time.monotonic() - began, _cpu_seconds() - cpu
    statuses = sorted({result.status for result in results})
    if statuses != ["ok"] or not all(result.committed for result in results):
        raise SystemExit(f"the benchmark fleet did not update cleanly: {[vars(r) for r in results]}")
    if profiler:
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(20)
        print(text.getvalue(), file=sys.stderr)
    return {
        "services": count,
        "wall_s_per_service": round(wall / count, 2),
        "cpu_s_per_service": round(cpu / count, 2),
        "load_average_1m": round(os.getloadavg()[0], 1),
        "cache": "empty" if empty_cache else "the machine's",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.update_fleet", description=__doc__)
    parser.add_argument("--services", type=int, nargs="+", default=[12, 20], help="fleet sizes")
    parser.add_argument("--profile", action="store_true", help="print where the time goes")
    parser.add_argument("--empty-cache", action="store_true", help="start each fleet with an empty cache")
    args = parser.parse_args(argv)
    for count in args.services:
        print(json.dumps(measure(count, profile=args.profile, empty_cache=args.empty_cache)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
