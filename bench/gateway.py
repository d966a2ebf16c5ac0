"""Benchmark the gateway against a direct call to its upstream and against LiteLLM's proxy (issue 24).

    python -m bench.gateway                      # 5 s per measurement, 4/32/64 connections (about 2 minutes)
    python -m bench.gateway --seconds 1 --smoke  # checks the harness (no LiteLLM, one connection count)

The same fast fake upstream for all three (bench/peers/fake_openai.py, with the /v1/metadata a Nexus
service has): a rendered `role: gateway` service (`python -m app`, production defaults: JSON access log
at INFO, metrics on; MAX_CONCURRENT_REQUESTS raised to 1024 so that 64 connections from one caller are
not limited) routing to it from GATEWAY_SERVICES, and LiteLLM's proxy (`litellm[proxy]` in a venv of its
own, bench/.venvs/litellm) with one model on the same upstream. The gateway and LiteLLM run on core 0, the
upstream and wrk on core 1. Measured with wrk: a non-streamed chat (bench/chat.lua's body, the fake's
model) and a stream (24 events each), at 4, 32 and 64 connections; reported: requests/s, p50/p99 and
the issue's goals (gateway/LiteLLM chat throughput at 32, added p50 over direct at 4, throughput at 64
over 4, streamed events/s over direct).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.peers import fake_openai
from bench.run import LOAD_CORE, VENVS, wrk
from devtools.live import free_port, wait_for_health
from devtools.render import PYTHON, ROOT, copy_working_tree, render

Event = dict[str, Any]
# the load (wrk, on bench.run's LOAD_CORE) shares its core with the upstream
GATEWAY_CORE, UPSTREAM_CORE = "0", LOAD_CORE
CHAT = "/v1/chat/completions"
MODEL = fake_openai.MODEL
# events of one fake stream: the role chunk, the words, the finish chunk, the usage chunk, [DONE]
STREAM_EVENTS = fake_openai.STREAM_CHUNKS + 4
CHAT_BODY = {"model": MODEL, "messages": [{"role": "user", "content": "hello from wrk, how are you today?"}]}
# a stream at a model's pace: an event every 10 ms (100 tokens/s), as a generation sends them; the fast
# stream above arrives whole in microseconds, which measures the proxy's cost per request, not per event
PACED = "slow-0.01"
_MODELS = json.dumps(
    {
        "object": "list",
        "data": [
            {"id": name, "object": "model", "created": 0, "owned_by": "bench"} for name in (MODEL, PACED)
        ],
    }
)
_METADATA = json.dumps(
    {"name": "fake-upstream", "instance_id": "fake-1", "capabilities": ["chat.completions"]}
)


async def upstream(scope: Event, receive: Any, send: Any) -> None:
    """fake_openai's app, plus the /v1/metadata the gateway reads of each instance, and a model list that
    names the paced model too (the gateway routes only the models an instance lists)."""
    if scope["type"] == "http" and scope["path"] in ("/v1/metadata", "/v1/models"):
        body = (_METADATA if scope["path"] == "/v1/metadata" else _MODELS).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        return
    await fake_openai.app(scope, receive, send)


@contextmanager
def process(  # noqa: PLR0917 - a command line and where it runs
    command: list[str], core: str, env: dict[str, str], health: str, log: Path, cwd: Path = ROOT
) -> Iterator[None]:
    with log.open("wb") as out:
        started = subprocess.Popen(
            ["taskset", "-c", core, *command],
            cwd=cwd,
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for_health(health, died=lambda: started.poll() is not None, details=log.read_text, timeout=120)
        yield
    finally:
        started.terminate()
        try:
            started.wait(timeout=15)
        except subprocess.TimeoutExpired:
            started.kill()
            started.wait()


def lua(folder: Path, name: str, body: dict[str, Any], key: str | None) -> Path:
    script = folder / f"{name}.lua"
    lines = [
        'wrk.method = "POST"',
        f"wrk.body = '{json.dumps(body)}'",
        'wrk.headers["Content-Type"] = "application/json"',
    ]
    if key:
        lines.append(f'wrk.headers["Authorization"] = "Bearer {key}"')
    script.write_text("\n".join(lines) + "\n")
    return script


def litellm_config(folder: Path, upstream_url: str) -> Path:
    """LiteLLM's config (JSON is YAML) as bench/proxy.py writes it: one model on the same upstream."""
    config = folder / "litellm.yaml"
    model = {"model": f"openai/{MODEL}", "api_base": f"{upstream_url}/v1", "api_key": "sk-upstream"}
    config.write_text(
        json.dumps(
            {
                "model_list": [{"model_name": MODEL, "litellm_params": model}],
                "general_settings": {"master_key": "os.environ/LITELLM_MASTER_KEY"},
            }
        )
    )
    return config


def run(seconds: float, connections: list[int], with_litellm: bool) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-gateway-") as temporary:
        folder = Path(temporary)
        gateway = render(
            copy_working_tree(folder / "template"),
            folder / "gateway",
            {"service_name": "gateway", "role": "gateway", "capabilities": []},
        )
        up_port, gw_port, ll_port = free_port(), free_port(), free_port()
        upstream_url = f"http://127.0.0.1:{up_port}"
        targets: dict[str, tuple[str, str | None]] = {
            "direct": (upstream_url, None),
            "gateway": (f"http://127.0.0.1:{gw_port}", None),
        }
        uvicorn = [PYTHON, "-m", "uvicorn", "--host", "127.0.0.1", "--port", str(up_port), "--no-access-log"]
        peers = {"PYTHONPATH": str(ROOT)}
        gateway_env = {
            "SERVICE_HOST": "127.0.0.1",
            "SERVICE_PORT": str(gw_port),
            "GATEWAY_SERVICES": upstream_url,
            "MAX_CONCURRENT_REQUESTS": "1024",
            "DRAIN_SECONDS": "0",
            "PYTHONUNBUFFERED": "1",
        }
        master_key = "sk-" + secrets.token_hex(32)
        litellm = VENVS / "litellm" / "bin" / "litellm"
        with (
            process([*uvicorn, "bench.gateway:upstream"], UPSTREAM_CORE, peers, f"{upstream_url}/health", folder / "upstream.log"),
            process([PYTHON, "-m", "app"], GATEWAY_CORE, gateway_env, f"http://127.0.0.1:{gw_port}/health", folder / "gateway.log", gateway),
        ):  # fmt: skip
            deadline = time.monotonic() + 30
            while b'"routable":true' not in subprocess.run(["curl", "-s", f"http://127.0.0.1:{gw_port}/v1/gateway/instances"], capture_output=True, check=False).stdout:  # fmt: skip
                assert time.monotonic() < deadline, (folder / "gateway.log").read_text()
                time.sleep(0.1)
            results |= measure(targets, folder, seconds, connections)
            if with_litellm:
                # the cost map bundled with the package: no fetch from the network
                env = {"LITELLM_MASTER_KEY": master_key, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
                command = [str(litellm), "--config", str(litellm_config(folder, upstream_url)), "--host", "127.0.0.1", "--port", str(ll_port), "--num_workers", "1"]  # fmt: skip
                with process(
                    command,
                    GATEWAY_CORE,
                    env,
                    f"http://127.0.0.1:{ll_port}/health/liveliness",
                    folder / "litellm.log",
                ):
                    results |= measure(
                        {"litellm": (f"http://127.0.0.1:{ll_port}", master_key)}, folder, seconds, connections
                    )
    return results


def measure(
    targets: dict[str, tuple[str, str | None]], folder: Path, seconds: float, connections: list[int]
) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for name, (url, key) in targets.items():
        chat = lua(folder, f"{name}-chat", CHAT_BODY, key)
        stream = lua(folder, f"{name}-stream", {**CHAT_BODY, "stream": True}, key)
        paced = lua(folder, f"{name}-paced", {**CHAT_BODY, "model": PACED, "stream": True}, key)
        wrk(url, CHAT, 1, connections=4, script=chat)  # warm up: connections, caches
        for count in connections:
            kinds = [("chat", chat), ("stream", stream)]
            if name != "litellm" and count == max(connections):  # the relay's pace against the upstream's
                kinds.append(("paced", paced))
            for kind, script in kinds:
                sample = wrk(url, CHAT, seconds, connections=count, script=script)
                results[f"{name} {kind} {count}"] = sample
                print(f"{name:8} {kind:6} c={count:<3} {sample['rps']:9.1f}/s  p50 {sample['p50_ms']:7.2f} ms  "
                      f"p99 {sample['p99_ms']:7.2f} ms  non-2xx {sample['non_2xx']}", flush=True)  # fmt: skip
    return results


def goals(results: dict[str, Any], connections: list[int]) -> list[str]:
    lines = []
    low, mid, high = min(connections), 32 if 32 in connections else max(connections), max(connections)
    if f"litellm chat {mid}" in results:
        ratio = results[f"gateway chat {mid}"]["rps"] / results[f"litellm chat {mid}"]["rps"]
        lines.append(f"chat throughput gateway/LiteLLM at {mid} connections: {ratio:.1f}x (goal >= 10x)")
    added = results[f"gateway chat {low}"]["p50_ms"] - results[f"direct chat {low}"]["p50_ms"]
    lines.append(f"added median latency over direct at {low} connections: {added:.2f} ms (goal <= 1 ms)")
    held = results[f"gateway chat {high}"]["rps"] / results[f"gateway chat {low}"]["rps"]
    lines.append(f"gateway chat throughput at {high} over {low} connections: {held:.2f} (goal >= 0.9)")
    events = results[f"gateway paced {high}"]["rps"] / results[f"direct paced {high}"]["rps"]
    lines.append(
        f"streamed events/s gateway/direct at {high} connections, an event every 10 ms: {events:.2f} "
        f"({results[f'gateway paced {high}']['rps'] * STREAM_EVENTS:.0f} events/s; goal >= 0.9)"
    )
    burst = results[f"gateway stream {mid}"]["rps"] / results[f"direct stream {mid}"]["rps"]
    lines.append(
        f"whole streams/s gateway/direct at {mid} connections, a stream sent at once: {burst:.2f} "
        "(no goal: the proxy's cost per request against the upstream's microseconds)"
    )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", default="4,32,64")
    parser.add_argument("--smoke", action="store_true", help="one second, 4 connections, no LiteLLM")
    parser.add_argument("--json", type=Path, help="also write the samples to this file")
    parser.add_argument(
        "--update-docs", action="store_true", help="rewrite docs/performance.md's gateway results block"
    )
    options = parser.parse_args(argv)
    connections = [4] if options.smoke else [int(count) for count in options.connections.split(",")]
    seconds = 1.0 if options.smoke else options.seconds
    litellm = not options.smoke and (VENVS / "litellm" / "bin" / "litellm").exists()
    if not options.smoke and not litellm:
        print(
            "no LiteLLM at bench/.venvs/litellm: pip install 'litellm[proxy]' into it to compare",
            file=sys.stderr,
        )
    results = run(seconds, connections, litellm)
    for line in goals(results, connections):
        print(line)
    if options.json:
        options.json.write_text(json.dumps(results, indent=2) + "\n")
    if options.update_docs and not options.smoke:
        update_docs(table(results, connections))
    return 0


def table(results: dict[str, Any], connections: list[int]) -> str:
    """The results as docs/performance.md shows them: requests/s and median latency per target and load."""
    lines = [
        "| target | kind | " + " | ".join(f"c={count} req/s (p50 ms)" for count in connections) + " |",
        "| --- | --- | " + " | ".join("---" for _ in connections) + " |",
    ]
    for name in ("direct", "gateway", "litellm"):
        for kind in ("chat", "stream", "paced"):
            cells = [results.get(f"{name} {kind} {count}") for count in connections]
            if all(cell is None for cell in cells):
                continue
            shown = [f"{cell['rps']:.0f} ({cell['p50_ms']:.2f})" if cell else "-" for cell in cells]
            lines.append(f"| {name} | {kind} | " + " | ".join(shown) + " |")
    lines += ["", *(f"- {line}" for line in goals(results, connections))]
    return "\n".join(lines) + "\n"


def update_docs(text: str) -> None:
    doc = ROOT / "docs" / "performance.md"
    start, end = "<!-- gateway:start -->\n", "<!-- gateway:end -->"
    head, found, rest = doc.read_text().partition(start)
    if not found:
        raise RuntimeError(f"docs/performance.md has no {start.strip()} marker")
    _, _, tail = rest.partition(end)
    doc.write_text(f"{head}{start}{text}{end}{tail}")


if __name__ == "__main__":
    raise SystemExit(main())
