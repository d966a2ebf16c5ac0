"""Benchmark the proxy path: a rendered wrapper (`backend: openai`) against LiteLLM's proxy and the backend
itself, all in front of one fast fake OpenAI backend (bench/peers/fake_openai.py), interleaved round by round.

    python -m bench.proxy                 # full run (about 8 minutes): 5 rounds of 5 s, 1,000 streams
    python -m bench.proxy --smoke         # a second per measurement, 100 streams, no LiteLLM (make test)
    python -m bench.proxy --update-docs   # full run, then rewrite the proxy block of docs/performance.md
    python -m bench.proxy --compare PATH  # also the wrapper with the library of PATH (a change tried out)

The wrapper and LiteLLM run pinned to core 0 (one uvicorn worker each), wrk and the fake backend to core 1
(the backend spends about 50 µs of a core per chat: a few percent of it at the proxies' rates); the
backend alone ("direct") is measured with wrk on core 0, then idle. Every round measures each target at 4,
32 and 64 connections (non-streamed chat, `bench/proxy-chat.lua`) and a stream at 32
(`bench/proxy-stream.lua`); ratios are taken within a round and the median over rounds is reported.

Then the memory of streams: a second wrapper (limits raised to let 1,000 requests in at once) holds
STREAMS open streams from a fake backend that sends one chunk every PACE seconds; its VmRSS before and at
the plateau gives the cost per stream. The client is raw asyncio sockets (one process, core 1), so that a
client library's own costs stay out of the figure.

LiteLLM's proxy runs from PyPI (`litellm[proxy]`, LITELLM_VERSION) in a virtualenv of its own under
bench/.venvs, as its users deploy it: `litellm --config`, a master key, the backend as an OpenAI-compatible
model, its default logging. The smoke run leaves it out: its virtualenv is about 600 MB from the network and
it takes 30 s or more to start on this machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench.run import (
    BENCH,
    LOAD_CORE,
    RESULTS,
    SERVER_CORE,
    Server,
    environment,
    service_requirements,
    venv,
    wrk,
)
from devtools.render import ROOT, copy_working_tree, load_answers, render

LITELLM_VERSION = "1.108.7"
CONNECTIONS = [4, 32, 64]
# the streamed chat is measured at one concurrency only: its figure is what a stream costs, not scaling
STREAM_CONNECTIONS = 32
CHAT, STREAM = BENCH / "proxy-chat.lua", BENCH / "proxy-stream.lua"
ENDPOINT = "/v1/chat/completions"
# the memory of open streams: how many at once, and the fake backend's pause between chunks (20 chunks)
STREAMS = 1000
PACE = 0.5
# every request of the measured wrapper gets in: the limits sized above the 64 connections measured (by
# default one caller may hold 3/4 of MAX_CONCURRENT_REQUESTS, 48 of 64), the pool covering them as
# start-up requires
WRAPPER_LIMITS = {
    "MAX_CONCURRENT_REQUESTS": "128",
    "MAX_CONCURRENT_REQUESTS_PER_CALLER": "128",
    "BACKEND_MAX_CONNECTIONS": "128",
}
# the floors of issue 23, each within a round
TARGETS = [
    ("wrapper c=64 / wrapper c=4", ">=", 0.9),
    ("wrapper / litellm c=32", ">=", 10.0),
    ("wrapper-alt c=64 / wrapper-alt c=4", ">=", 0.9),
    ("wrapper-alt / litellm c=32", ">=", 10.0),
]


def _litellm_config(backend: str) -> str:
    return json.dumps(
        {
            "model_list": [
                {
                    "model_name": "bench-model",
                    "litellm_params": {
                        "model": "openai/bench-model",
                        "api_base": f"{backend}/v1",
                        "api_key": "sk-backend",
                    },
                }
            ],
            "general_settings": {"master_key": "os.environ/LITELLM_MASTER_KEY"},
        }
    )  # JSON is YAML: LiteLLM reads it as its config file


def servers(
    service: Path, workdir: Path, *, litellm: bool, compare: Path | None = None
) -> tuple[Server, list[Server], dict[str, Server]]:
    """(the fake backend, the measured targets, each wrapper's twin for the streams' memory), not started;
    with `compare`, also the wrapper with the platform library of that project folder ("wrapper-alt", in a
    virtualenv of its own), measured in the same rounds."""
    python = venv("service", service_requirements(service))
    backend = Server(
        "backend",
        "the fake OpenAI backend (raw ASGI, pre-encoded answers)",
        [python, "-m", "uvicorn", "--host", "127.0.0.1", "--port", "{port}", "--no-access-log",
         "--log-level", "warning", "bench.peers.fake_openai:app"],
        {"PYTHONPATH": str(ROOT)},
        ROOT,
        core=LOAD_CORE,
    )  # fmt: skip
    wrapper_env = {"LOG_LEVEL": "INFO", "PYTHONUNBUFFERED": "1", "DRAIN_SECONDS": "0"}
    wrapper = Server(
        "wrapper",
        "the rendered wrapper (`backend: openai`): `python -m app`, JSON access log at INFO, metrics, tracing",
        [python, "-m", "app"],
        {**wrapper_env, **WRAPPER_LIMITS},
        service,
    )
    direct = Server("direct", "the fake backend itself, wrk on the idle server core", [], {}, ROOT)
    targets = [wrapper, direct]
    pythons = {"wrapper": python}
    if compare is not None:
        alternative = pythons["wrapper-alt"] = venv("service-alt", service_requirements(service, compare))
        targets.insert(
            1,
            Server(
                "wrapper-alt",
                f"the same wrapper with the platform library of {compare}",
                [alternative, "-m", "app"],
                {**wrapper_env, **WRAPPER_LIMITS},
                service,
            ),
        )
    if litellm:
        config = workdir / "litellm.yaml"
        targets.insert(
            1,
            Server(
                "litellm",
                f"LiteLLM's proxy {LITELLM_VERSION} (`litellm --config`, one worker, its default logging)",
                [str(Path(venv("litellm", f"litellm[proxy]=={LITELLM_VERSION}\n")).with_name("litellm")),
                 "--config", str(config), "--host", "127.0.0.1", "--port", "{port}", "--num_workers", "1"],
                {
                    "LITELLM_MASTER_KEY": f"sk-{secrets.token_hex(32)}",
                    # the cost map bundled with the package: no fetch from the network at start
                    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
                },
                workdir,
                health="/health/liveliness",
                start_timeout=180,
            ),
        )  # fmt: skip
    limits = {name: str(STREAMS + 100) for name in WRAPPER_LIMITS}
    streams = {
        name: Server(
            f"{name}-streams",
            f"{name} with its limits at {STREAMS + 100}, for {STREAMS} open streams",
            [interpreter, "-m", "app"],
            {**wrapper_env, "LOG_LEVEL": "WARNING", **limits},
            service,
        )
        for name, interpreter in pythons.items()
    }
    return backend, targets, streams


def measure(target: Server, backend: Server, script: Path, connections: int, seconds: float) -> dict:
    """A wrk run on the target (the backend when the target is `direct`), with the server's CPU per request."""
    server = backend if target.name == "direct" else target
    key = target.env.get("LITELLM_MASTER_KEY")
    before = server.cpu_seconds()
    sample = wrk(
        server.url,
        ENDPOINT,
        seconds,
        connections=connections,
        script=script,
        core=SERVER_CORE if target.name == "direct" else LOAD_CORE,
        env={"BENCH_AUTHORIZATION": f"Bearer {key}"} if key else None,
        # LiteLLM's answers take seconds at 64 connections: wrk's default (2 s) would drop them uncounted
        timeout=30,
    )
    sample["cpu_us_per_request"] = (server.cpu_seconds() - before) / max(sample["requests"], 1) * 1e6
    return sample


class _Opening:
    """The streams still to open: `all_open` is set once each got its first event (or failed)."""

    def __init__(self, streams: int) -> None:
        self.waiting = streams
        self.all_open = asyncio.Event()

    def one_open(self) -> None:
        self.waiting -= 1
        if not self.waiting:
            self.all_open.set()


async def _stream(port: int, body: bytes, opening: _Opening) -> bool:
    """One streamed chat over a raw socket: True when it ended with [DONE]."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = (
        f"POST {ENDPOINT} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\n\r\n"
    )
    writer.write(head.encode() + body)
    seen, counted = b"", False
    try:
        while chunk := await reader.read(65536):
            seen = seen[-16:] + chunk  # a marker may straddle two reads
            if not counted and b"data:" in seen:
                counted = True
                opening.one_open()
            if b"[DONE]" in seen:
                return True
        return False
    finally:
        if not counted:
            opening.one_open()
        writer.close()


async def _hold_streams(server: Server, streams: int, pace: float) -> dict:
    body = json.dumps(
        {"model": f"slow-{pace}", "stream": True, "messages": [{"role": "user", "content": "hello"}]}
    ).encode()
    before = server.rss_mib()
    opening = _Opening(streams)
    started = time.perf_counter()
    tasks = [asyncio.create_task(_stream(server.port, body, opening)) for _ in range(streams)]
    # every stream open (its first event arrived); each lasts 20 x `pace` seconds: all are open now
    await opening.all_open.wait()
    opened_seconds = time.perf_counter() - started
    peak = before
    while not all(task.done() for task in tasks):
        peak = max(peak, server.rss_mib())
        await asyncio.sleep(0.05)
    completed = sum(
        1 for task in tasks if not task.cancelled() and task.exception() is None and task.result()
    )
    return {
        "streams": streams,
        "completed": completed,
        "seconds_to_open_all": round(opened_seconds, 2),
        "rss_before_mib": round(before, 1),
        "rss_peak_mib": round(peak, 1),
        "rss_after_mib": round(server.rss_mib(), 1),
        "kib_per_stream": round((peak - before) * 1024 / streams, 1),
    }


def hold_streams(server: Server, streams: int) -> dict:
    """Open `streams` streams through `server` at once, sample its VmRSS until they all end."""
    # a few quick ones first, unmeasured: the first stream's imports and pools are not a stream's cost
    asyncio.run(_hold_streams(server, 8, 0.01))
    return asyncio.run(_hold_streams(server, streams, PACE))


def run(rounds: int, seconds: float, streams: int, *, litellm: bool, compare: Path | None = None) -> dict:
    with tempfile.TemporaryDirectory() as scratch:
        workdir = Path(scratch)
        service = render(copy_working_tree(workdir / "template"), workdir / "svc", load_answers("ai-backend"))
        backend, targets, stream_servers = servers(service, workdir, litellm=litellm, compare=compare)
        started: list[Server] = []
        try:
            backend.start(workdir)
            started.append(backend)
            (workdir / "litellm.yaml").write_text(_litellm_config(backend.url))
            for server in [*targets, *stream_servers.values()]:
                if server.name != "direct":
                    server.env["BACKEND_URL"] = backend.url
                    server.start(workdir)
                    started.append(server)
            kinds = [(CHAT, connections) for connections in CONNECTIONS] + [(STREAM, STREAM_CONNECTIONS)]
            for target in targets:  # every code path once under load, not measured
                for script, connections in kinds:
                    measure(target, backend, script, connections, 1)
            measured: list[dict[str, dict[str, dict]]] = []
            for _ in range(rounds):
                measured.append(
                    {
                        target.name: {
                            _label(script, connections): measure(
                                target, backend, script, connections, seconds
                            )
                            for script, connections in kinds
                        }
                        for target in targets
                    }
                )
            memory = {name: hold_streams(server, streams) for name, server in stream_servers.items()}
        finally:
            for server in reversed(started):
                server.stop()
        return {
            "environment": {
                **environment(),
                "wrk": f"-t1, pinned to core {LOAD_CORE} with the fake backend; proxies pinned to core {SERVER_CORE}",
            },
            "settings": {
                "rounds": rounds,
                "seconds": seconds,
                "wrapper": WRAPPER_LIMITS,
                "pace": PACE,
                "compare": str(compare) if compare else None,
            },
            "targets": {target.name: target.description for target in targets},
            "medians": {
                name: {
                    label: {
                        key: round(statistics.median(r[name][label][key] for r in measured), 2)
                        for key in ("rps", "p50_ms", "p99_ms", "cpu_us_per_request", "non_2xx", "errors")
                    }
                    for label in measured[0][name]
                }
                for name in measured[0]
            },
            "ratios": {name: round(value, 3) for name, value in ratios(measured).items()},
            "streams": memory,
        }


def _label(script: Path, connections: int) -> str:
    return f"{'stream' if script == STREAM else 'chat'} c={connections}"


def ratios(rounds: list[dict[str, dict[str, dict]]]) -> dict[str, float]:
    """Medians over rounds of the ratios of throughput: the wrapper at 64 connections to itself at 4, and
    to each peer measured at each concurrency."""

    def median(top: str, top_label: str, bottom: str, bottom_label: str) -> float:
        return statistics.median(r[top][top_label]["rps"] / r[bottom][bottom_label]["rps"] for r in rounds)

    low, high = f"c={CONNECTIONS[0]}", f"c={CONNECTIONS[-1]}"
    found = {}
    for wrapper in (name for name in rounds[0] if name.startswith("wrapper")):
        found[f"{wrapper} {high} / {wrapper} {low}"] = median(wrapper, f"chat {high}", wrapper, f"chat {low}")
        for label in rounds[0][wrapper]:
            for peer in ("litellm", "direct"):
                if peer in rounds[0]:
                    found[f"{wrapper} / {peer} {label.removeprefix('chat ')}"] = median(
                        wrapper, label, peer, label
                    )
    return found


def targets(results: dict) -> list[tuple[str, str, bool]]:
    measured = results["ratios"]
    return [
        (f"{name} {op} {limit}", f"{measured[name]:.2f}", measured[name] >= limit)
        for name, op, limit in TARGETS
        if name in measured
    ]


def markdown(results: dict) -> str:
    lines = [
        "| target | request | req/s | p50 ms | p99 ms | server CPU µs/req | non-2xx | errors |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, labels in results["medians"].items():
        for label, sample in labels.items():
            lines.append(
                f"| {name} | {label} | {sample['rps']:,.0f} | {sample['p50_ms']:.2f} | {sample['p99_ms']:.2f} "
                f"| {sample['cpu_us_per_request']:.0f} | {sample['non_2xx']:.0f} | {sample['errors']:.0f} |"
            )
    lines += ["", "| ratio (median of the rounds' ratios) | value |", "| --- | --- |"]
    lines += [f"| {name} | {value:.2f} |" for name, value in results["ratios"].items()]
    lines += ["", "| target | measured | met |", "| --- | --- | --- |"]
    lines += [f"| {name} | {value} | {'yes' if met else '**no**'} |" for name, value, met in targets(results)]
    settings = results["settings"]
    for name, memory in results["streams"].items():
        lines += [
            "",
            f"{memory['streams']:,} concurrent streams through {name} ({memory['completed']:,} completed, all "
            f"open {memory['seconds_to_open_all']} s after the first was sent): VmRSS {memory['rss_before_mib']} "
            f"MiB before, {memory['rss_peak_mib']} MiB at the peak, {memory['rss_after_mib']} MiB after: "
            f"**{memory['kib_per_stream']} KiB per stream**.",
        ]
    lines += [
        "",
        f"Medians of {settings['rounds']} interleaved rounds of {settings['seconds']} s per target and request. "
        f"Wrapper limits: {', '.join(f'{name}={value}' for name, value in settings['wrapper'].items())}.",
        "",
        "Machine: " + ", ".join(f"{key} {value}" for key, value in results["environment"].items()) + ".",
    ]
    return "\n".join(lines) + "\n"


def update_docs(table: str) -> None:
    doc = ROOT / "docs" / "performance.md"
    text = doc.read_text()
    start, end = "<!-- proxy:start -->\n", "<!-- proxy:end -->"
    head, found, rest = text.partition(start)
    if not found:
        raise RuntimeError(f"docs/performance.md has no {start.strip()} marker")
    _, _, tail = rest.partition(end)
    doc.write_text(f"{head}{start}{table}{end}{tail}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.proxy", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--streams", type=int, default=STREAMS)
    parser.add_argument("--smoke", action="store_true", help="one short round, 100 streams, no LiteLLM")
    parser.add_argument("--no-litellm", action="store_true", help="leave LiteLLM's proxy out")
    parser.add_argument(
        "--update-docs", action="store_true", help="write the results into docs/performance.md"
    )
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument(
        "--compare",
        type=lambda text: Path(text).resolve(),
        help="also measure the wrapper with the platform library of this project folder (a change tried out)",
    )
    args = parser.parse_args(argv)
    if args.update_docs and (args.smoke or args.no_litellm or args.compare):
        parser.error(
            "--update-docs publishes a full run of this tree: leave out --smoke, --no-litellm, --compare"
        )
    if shutil.which("wrk") is None or shutil.which("taskset") is None:
        print("bench: needs wrk and taskset (apt-get install wrk util-linux)", file=sys.stderr)
        return 2
    if args.smoke:
        results = run(rounds=1, seconds=1.0, streams=100, litellm=False, compare=args.compare)
    else:
        results = run(
            args.rounds, args.seconds, args.streams, litellm=not args.no_litellm, compare=args.compare
        )
    table = markdown(results)
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "proxy.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.output / "proxy.md").write_text(table)
    print(table)
    if args.update_docs:
        update_docs(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
