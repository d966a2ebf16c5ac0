"""Benchmark a freshly rendered default service against its peers, interleaved round by round.

    python -m bench                 # full run (about 10 minutes): rounds of every app and endpoint
    python -m bench --smoke         # a second per measurement: checks the harness (make test runs it)
    python -m bench --update-docs   # full run, then rewrite the results block of docs/performance.md
    python -m bench --apps production,production-no-obs --rounds 3 --seconds 3
                                    # only these apps (here: what metrics and tracing cost, about a minute)

Servers run one uvicorn worker pinned to core 0; wrk runs pinned to core 1. Ratios are computed within
each round and the median over rounds is reported, so that noise on this shared machine cancels out.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path

import httpx

from devtools.live import free_port, wait_for_health
from devtools.render import GIT_IDENTITY, PYTHON, ROOT, copy_working_tree, git, load_answers, render

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"
VENVS = BENCH / ".venvs"
PLATFORM = ROOT / "nexus-ai-platform"
# measured endpoints; a label with a suffix is a variant of its path (another request body)
ENDPOINTS = [
    "/health",
    "/readyz",
    "/v1/metadata",
    "/v1/echo",
    "/v1/chat/completions",
    "/v1/chat/completions stream",
]
SCRIPTS = {
    "/v1/echo": BENCH / "post.lua",
    "/v1/chat/completions": BENCH / "chat.lua",
    "/v1/chat/completions stream": BENCH / "chat-stream.lua",
}
# server-sent events per streamed completion (chat-stream.lua)
STREAM_EVENTS = 103
# the service under test: the default answers, serving chat completions (the example implementation)
BENCH_ANSWERS = {"capabilities": ["chat.completions"]}
SERVER_CORE, LOAD_CORE = "0", "1"
CONNECTIONS = 32


@dataclass
class Server:
    name: str
    description: str
    command: list[str]
    env: dict[str, str]
    cwd: Path
    # the core it is pinned to, and the path that answers 200 once it serves
    core: str = SERVER_CORE
    health: str = "/health"
    start_timeout: float = 30
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    log: Path | None = None
    samples: dict[str, list[dict]] = field(default_factory=dict)

    def start(self, log_dir: Path) -> float:
        """Start pinned to its core; return seconds to the first 200 on its health path."""
        self.port = free_port()
        command = [part.replace("{port}", str(self.port)) for part in self.command]
        env = {**os.environ, **self.env, "SERVICE_PORT": str(self.port), "SERVICE_HOST": "127.0.0.1"}
        log_path = self.log = log_dir / f"{self.name}.log"
        started = time.perf_counter()
        with log_path.open("ab") as log:
            process = self.process = subprocess.Popen(
                ["taskset", "-c", self.core, *command],
                cwd=self.cwd,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_for_health(
            f"{self.url}{self.health}",
            died=lambda: process.poll() is not None,
            details=lambda: log_path.read_text()[-2000:],
            timeout=self.start_timeout,
            interval=0.005,
        )
        return time.perf_counter() - started

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None, f"{self.name} was not started"
        return self.process.pid

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_mib(self) -> float:
        status = Path(f"/proc/{self.pid}/status").read_text()
        return int(_search(r"VmRSS:\s+(\d+) kB", status)) / 1024


def _search(pattern: str, text: str) -> str:
    """The first group of `pattern` in `text` (a tool's output); RuntimeError showing the output if absent."""
    found = re.search(pattern, text, re.MULTILINE)
    if found is None:
        raise RuntimeError(f"{pattern!r} not found in:\n{text}")
    return found.group(1)


def venv(name: str, requirements: str) -> str:
    """A virtualenv with exactly `requirements` (as production has), reused while they stay the same."""
    folder = VENVS / name
    python = folder / "bin" / "python"
    marker = folder / "requirements.txt"
    if not (python.exists() and marker.exists() and marker.read_text() == requirements):
        shutil.rmtree(folder, ignore_errors=True)
        # uv (a dependency of the maintainers' environment) builds it several times faster than venv + pip
        uv = str(Path(sys.executable).with_name("uv"))
        subprocess.run([uv, "venv", "--quiet", "--python", sys.executable, str(folder)], check=True)
        (folder / "wanted.txt").write_text(requirements)
        subprocess.run(
            [uv, "pip", "install", "--quiet", "--python", str(python), "-r", str(folder / "wanted.txt")],
            check=True,
        )
        marker.write_text(requirements)
    return str(python)


def service_requirements(service: Path, platform: Path = PLATFORM) -> str:
    """What the service's image installs: its lock's pins (without the hashes), and the platform library
    from this repository (not yet on an index), identified by its source so that a change reinstalls it.
    `platform`: the library from another tree instead (a change tried out before it lands)."""
    lock = re.sub(r"\s*\\\n\s*--hash=\S+", "", (service / "requirements.lock").read_text())
    pins = [line for line in lock.splitlines() if line and not line.startswith(("#", "nexus-ai-platform"))]
    source = hashlib.sha256()
    for path in sorted([*platform.rglob("*.py"), platform / "pyproject.toml"]):
        source.update(path.read_bytes())
    return "\n".join([*pins, f"nexus-ai-platform @ {platform.as_uri()}  # {source.hexdigest()[:16]}"]) + "\n"


def fastapi_requirements() -> str:
    """The FastAPI peer's stack, at the versions the maintainers' environment pins."""
    names = ["fastapi", "pydantic", "uvicorn", "uvloop", "httptools"]
    return "".join(f"{name}=={version(name)}\n" for name in names)


def servers(service: Path, log_level: str) -> list[Server]:
    """Each app in an environment like its production one: the service's own requirements (no pydantic,
    no test tools), FastAPI's with only FastAPI's stack."""
    service_python = venv("service", service_requirements(service))
    fastapi_python = venv("fastapi", fastapi_requirements())
    peers_env = {"PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}

    def uvicorn(python: str, target: str, *, access_log: bool = False) -> list[str]:
        quiet = [] if access_log else ["--no-access-log", "--log-level", "warning"]
        return [python, "-m", "uvicorn", "--host", "127.0.0.1", "--port", "{port}", *quiet, target]

    return [
        Server(
            "production",
            "the rendered service: `python -m app`, JSON access log at INFO, request ids, limits, fast path",
            [service_python, "-m", "app"],
            {"LOG_LEVEL": log_level, "PYTHONUNBUFFERED": "1", "DRAIN_SECONDS": "0"},
            service,
        ),
        Server(
            "production-no-obs",
            "the same service with METRICS_ENABLED=false and TRACING_ENABLED=false (access log still on)",
            [service_python, "-m", "app"],
            {
                "LOG_LEVEL": log_level,
                "PYTHONUNBUFFERED": "1",
                "DRAIN_SECONDS": "0",
                "METRICS_ENABLED": "false",
                "TRACING_ENABLED": "false",
            },
            service,
        ),
        Server(
            "bare-litestar",
            "the same Litestar app without the platform's outer layer, no logging",
            uvicorn(service_python, "bench.peers.bare_litestar:app"),
            {**peers_env, "LOG_LEVEL": "WARNING"},
            service,
        ),
        Server(
            "fastapi-access-log",
            "FastAPI + pydantic with uvicorn's default access log (the seed's stack)",
            uvicorn(fastapi_python, "bench.peers.fastapi_app:app", access_log=True),
            peers_env,
            ROOT,
        ),
        Server(
            "fastapi",
            "FastAPI + pydantic, no access log",
            uvicorn(fastapi_python, "bench.peers.fastapi_app:app"),
            peers_env,
            ROOT,
        ),
        Server(
            "raw-asgi",
            "raw ASGI from pre-encoded bytes: the ceiling of uvicorn here",
            uvicorn(service_python, "bench.peers.raw_asgi:app"),
            peers_env,
            ROOT,
        ),
    ]


def wrk(
    url: str,
    endpoint: str,
    seconds: float,
    *,
    connections: int = CONNECTIONS,
    script: Path | None = None,
    core: str = LOAD_CORE,
    env: dict[str, str] | None = None,
    timeout: float = 2,
) -> dict:
    """One wrk run (one thread, pinned to `core`) on `endpoint`, with its script (`script`, else the
    endpoint's in SCRIPTS); `env` is added to wrk's environment (a script reads it). A request without an
    answer after `timeout` seconds counts as an error ("errors": also refused and broken connections)."""
    command = [
        "taskset",
        "-c",
        core,
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        f"--timeout={timeout}s",
        "--latency",
    ]
    script = script or SCRIPTS.get(endpoint)
    if script is not None:
        command += ["-s", str(script)]
    path = endpoint.split(" ", 1)[0]
    output = subprocess.run(
        [*command, url + path], capture_output=True, text=True, check=True, env={**os.environ, **(env or {})}
    ).stdout
    units = {"us": 0.001, "ms": 1.0, "s": 1000.0}

    def latency(percent: str) -> float:
        found = re.search(rf"^\s+{percent}%\s+([\d.]+)(us|ms|s)\s*$", output, re.MULTILINE)
        if found is None:  # no request completed
            raise RuntimeError(f"wrk measured nothing on {url}{path}:\n{output}")
        number, unit = found.groups()
        return float(number) * units[unit]

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return {
        "rps": float(_search(r"Requests/sec:\s+([\d.]+)", output)),
        "requests": int(_search(r"(\d+) requests in", output)),
        "p50_ms": latency("50"),
        "p99_ms": latency("99"),
        "non_2xx": int(errors.group(1)) if errors else 0,
        "errors": sum(int(count) for count in re.findall(r"(?:connect|read|write|timeout) (\d+)", output)),
    }


def measure(server: Server, path: str, seconds: float) -> dict:
    before = server.cpu_seconds()
    sample = wrk(server.url, path, seconds)
    sample["cpu_us_per_request"] = (server.cpu_seconds() - before) / max(sample["requests"], 1) * 1e6
    return sample


def cold_starts(apps: list[Server], log_dir: Path, times: int) -> dict[str, float]:
    """Median seconds from process start to the first 200 on /health, the apps taking turns (one
    unmeasured start each first, so that no app pays for compiling bytecode)."""
    seconds: dict[str, list[float]] = {app.name: [] for app in apps}
    for attempt in range(times + 1):
        for app in apps:
            elapsed = app.start(log_dir)
            app.stop()
            if attempt:
                seconds[app.name].append(elapsed)
    return {name: statistics.median(values) for name, values in seconds.items()}


def copier_timings(workdir: Path, times: int) -> dict[str, float]:
    """Wall time of `copier copy` and `copier update` (CLI, default answers), medians."""
    template = copy_working_tree(workdir / "template-bench")
    git(template, "tag", "v1.0.0")
    changed = template / "template" / "app" / "healthcheck.py.jinja"
    changed.write_text(changed.read_text() + "\n# a change of v1.0.1\n")
    git(template, "commit", "--quiet", "-am", "v1.0.1")
    git(template, "tag", "v1.0.1")
    copier = [PYTHON, "-m", "copier"]
    copies, updates = [], []
    for index in range(times):
        target = workdir / f"copy-{index}"
        started = time.perf_counter()
        subprocess.run(
            [*copier, "copy", "--trust", "--defaults", "--quiet", "-r", "v1.0.0", "-d", "service_name=bench-svc",
             str(template), str(target)],
            check=True, capture_output=True,
        )  # fmt: skip
        copies.append(time.perf_counter() - started)
        git(target, "init", "--quiet")
        git(target, "add", "--all")
        git(target, "commit", "--quiet", "-m", "service")
        started = time.perf_counter()
        subprocess.run(
            [*copier, "update", "--trust", "--defaults", "--quiet", "-r", "v1.0.1"],
            cwd=target, check=True, capture_output=True, env={**os.environ, **GIT_IDENTITY},
        )  # fmt: skip
        updates.append(time.perf_counter() - started)
    return {"copy_seconds": statistics.median(copies), "update_seconds": statistics.median(updates)}


# (numerator, denominator, path) of every ratio reported; those of apps left out of a run are skipped
RATIOS = [
    *[("production", "raw-asgi", path) for path in ENDPOINTS],
    ("production", "fastapi-access-log", "/v1/echo"),
    ("production", "fastapi", "/v1/echo"),
    ("production", "bare-litestar", "/v1/echo"),
    ("bare-litestar", "fastapi", "/v1/echo"),
    ("production", "fastapi-access-log", "/v1/chat/completions"),
    ("production", "fastapi", "/v1/chat/completions"),
    # chunks per second: the same number of events per request in both apps
    ("production", "bare-litestar", "/v1/chat/completions stream"),
    # what metrics and tracing cost: the same service with both on against both off
    *[("production", "production-no-obs", path) for path in ENDPOINTS],
]


def ratios(rounds: list[dict[str, dict[str, dict]]]) -> dict[str, float]:
    """Medians over rounds of the ratios the targets are stated in."""

    def median(numerator: str, denominator: str, path: str) -> float:
        return statistics.median(r[numerator][path]["rps"] / r[denominator][path]["rps"] for r in rounds)

    short = {"raw-asgi": "raw"}
    return {
        f"{numerator}/{short.get(denominator, denominator)} {path}": median(numerator, denominator, path)
        for numerator, denominator, path in RATIOS
        if numerator in rounds[0] and denominator in rounds[0]
    }


def environment() -> dict[str, str]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        platform.processor(),
    )
    packages = ["litestar", "msgspec", "uvicorn", "uvloop", "httptools", "fastapi", "pydantic", "copier"]
    return {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "python": platform.python_version(),
        "wrk": f"-t1 -c{CONNECTIONS}, pinned to core {LOAD_CORE}; servers pinned to core {SERVER_CORE}",
        **{name: version(name) for name in packages},
    }


def run(
    rounds: int,
    seconds: float,
    starts: int,
    copier_runs: int,
    only: list[str] | None = None,
    *,
    warm_up: bool = True,
) -> dict:
    with tempfile.TemporaryDirectory() as scratch:
        workdir = Path(scratch)
        answers = {**load_answers("default"), **BENCH_ANSWERS}
        service = render(copy_working_tree(workdir / "template"), workdir / "svc", answers)
        everything = {app.name: app for app in servers(service, "INFO")}
        apps = [everything[name] for name in only] if only else list(everything.values())
        production, fastapi = everything["production"], everything["fastapi"]
        production.start(workdir)
        metadata = workdir / "metadata.json"
        metadata.write_bytes(httpx.get(f"{production.url}/v1/metadata").content)
        production.stop()
        os.environ["BENCH_METADATA_FILE"] = str(metadata)
        cold = cold_starts([production, fastapi], workdir, starts) if starts else {}
        try:
            for app in apps:
                app.start(workdir)
            for app in apps if warm_up else ():  # every code path once under load, not measured
                for path in ENDPOINTS:
                    wrk(app.url, path, max(1.0, seconds / 5))
            measured: list[dict[str, dict[str, dict]]] = []
            for _ in range(rounds):
                measured.append(
                    {app.name: {path: measure(app, path, seconds) for path in ENDPOINTS} for app in apps}
                )
            rss = {app.name: round(app.rss_mib(), 1) for app in apps}
        finally:
            for app in apps:
                app.stop()
        return {
            "environment": environment(),
            "settings": {"rounds": rounds, "seconds": seconds, "connections": CONNECTIONS},
            "apps": {app.name: app.description for app in apps},
            "medians": {
                app: {
                    path: {
                        key: round(statistics.median(r[app][path][key] for r in measured), 2)
                        for key in ("rps", "p50_ms", "p99_ms", "cpu_us_per_request", "non_2xx")
                    }
                    for path in ENDPOINTS
                }
                for app in measured[0]
            },
            "ratios": {name: round(value, 3) for name, value in ratios(measured).items()},
            "cold_start_seconds": {name: round(value, 3) for name, value in cold.items()},
            "rss_mib_after_load": rss,
            "copier": {
                key: round(value, 2)
                for key, value in (copier_timings(workdir, copier_runs) if copier_runs else {}).items()
            },
        }


# the floors of v0.4.0 ("simpler while moving"), each against a peer measured in the same run
TARGETS = [
    # probes from the outer layer's fast path, against the ceiling of uvicorn here
    ("production/raw /health", ">=", 0.7),
    ("production/raw /readyz", ">=", 0.7),
    ("production/raw /v1/metadata", ">=", 0.7),
    # a JSON POST, with the platform's access log, against FastAPI with its own
    ("production/fastapi-access-log /v1/echo", ">=", 1.3),
    ("production/fastapi-access-log /v1/chat/completions", ">=", 1.3),
    # a server-sent event stream through the platform's ASGI layer, against bare Litestar
    ("production/bare-litestar /v1/chat/completions stream", ">=", 0.8),
    # metrics and tracing cost at most 5% on the example endpoint and 2% on the probe fast paths
    ("production/production-no-obs /v1/echo", ">=", 0.95),
    ("production/production-no-obs /health", ">=", 0.98),
    ("production/production-no-obs /readyz", ">=", 0.98),
    ("production/production-no-obs /v1/metadata", ">=", 0.98),
]
# measured on the commit v0.4.0's simplification started from (docs/performance.md, "v0.4.0"): cold start
# and RSS may be at most 10% worse. Cold start as a ratio to FastAPI's in the same run (the machine's
# speed cancels out); RSS in MiB after load.
BASELINE_COLD_START_VS_FASTAPI = 0.817
BASELINE_RSS_MIB = 48.1
WORSE_AT_MOST = 1.10


def targets(results: dict) -> list[tuple[str, str, bool]]:
    """Every target the run measured (a run of some apps only checks theirs)."""
    measured = results["ratios"]
    checks = [
        (f"{name} {op} {limit}", f"{measured[name]:.3f}", measured[name] >= limit)
        for name, op, limit in TARGETS
        if name in measured
    ]
    cold, rss, copier = results["cold_start_seconds"], results["rss_mib_after_load"], results["copier"]
    if cold:
        limit = BASELINE_COLD_START_VS_FASTAPI * WORSE_AT_MOST
        checks.append(
            (
                f"cold start <= {limit:.2f}x FastAPI's",
                f"{cold['production']:.2f} s vs {cold['fastapi']:.2f} s",
                cold["production"] <= limit * cold["fastapi"],
            )
        )
    if "production" in rss:
        limit = BASELINE_RSS_MIB * WORSE_AT_MOST
        checks.append(
            (f"RSS after load <= {limit:.1f} MiB", f"{rss['production']:.1f} MiB", rss["production"] <= limit)
        )
    if copier:
        checks += [
            ("copier copy < 2 s", f"{copier['copy_seconds']:.2f} s", copier["copy_seconds"] < 2),
            ("copier update < 4 s", f"{copier['update_seconds']:.2f} s", copier["update_seconds"] < 4),
        ]
    return checks  # fmt: skip


def markdown(results: dict) -> str:
    lines = [
        "| app | endpoint | req/s | p50 ms | p99 ms | server CPU µs/req |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for app, paths in results["medians"].items():
        for path, sample in paths.items():
            lines.append(
                f"| {app} | `{path}` | {sample['rps']:,.0f} | {sample['p50_ms']:.2f} | {sample['p99_ms']:.2f} "
                f"| {sample['cpu_us_per_request']:.0f} |"
            )
    if "production" in results["medians"]:
        stream = results["medians"]["production"]["/v1/chat/completions stream"]["rps"] * STREAM_EVENTS
        lines += ["", f"Streamed chat: {stream:,.0f} server-sent events per second through the platform."]
    lines += ["", "| target | measured | met |", "| --- | --- | --- |"]
    lines += [f"| {name} | {value} | {'yes' if met else '**no**'} |" for name, value, met in targets(results)]
    environment_line = ", ".join(f"{key} {value}" for key, value in results["environment"].items())
    settings = results["settings"]
    lines += [
        "",
        f"Medians of {settings['rounds']} interleaved rounds of {settings['seconds']} s per app and endpoint. "
        f"Cold start (median): {results['cold_start_seconds']}. RSS after load (MiB): {results['rss_mib_after_load']}.",
        "",
        f"Machine: {environment_line}.",
    ]
    return "\n".join(lines) + "\n"


def update_docs(table: str) -> None:
    doc = ROOT / "docs" / "performance.md"
    text = doc.read_text()
    start, end = "<!-- results:start -->\n", "<!-- results:end -->"
    head, _, rest = text.partition(start)
    _, _, tail = rest.partition(end)
    doc.write_text(f"{head}{start}{table}{end}{tail}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--smoke", action="store_true", help="one short round: checks the harness only")
    parser.add_argument(
        "--update-docs", action="store_true", help="write the results into docs/performance.md"
    )
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument(
        "--apps",
        type=lambda text: [name.strip() for name in text.split(",") if name.strip()],
        help="comma-separated apps to measure (default: all); skips cold starts and copier timings",
    )
    args = parser.parse_args(argv)
    if args.apps and args.update_docs:
        parser.error("--update-docs publishes a full run: leave out --apps")
    if shutil.which("wrk") is None or shutil.which("taskset") is None:
        print("bench: needs wrk and taskset (apt-get install wrk util-linux)", file=sys.stderr)
        return 2
    if args.smoke:
        # the harness end to end, not figures: no warm-up
        results = run(rounds=1, seconds=1.0, starts=1, copier_runs=1, only=args.apps, warm_up=False)
    elif args.apps:
        results = run(rounds=args.rounds, seconds=args.seconds, starts=0, copier_runs=0, only=args.apps)
    else:
        results = run(rounds=args.rounds, seconds=args.seconds, starts=5, copier_runs=3)
    table = markdown(results)
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "latest.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.output / "latest.md").write_text(table)
    print(table)
    if args.update_docs:
        update_docs(table)
    return 0
