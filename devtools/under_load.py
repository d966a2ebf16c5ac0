"""`make test-under-load`: `make test` several times in a row on a fresh clone while every core is busy.

The suite must not flake on a busy machine (a CI runner shared with other jobs). This clones HEAD (what
is committed, as CI sees it) into a temporary folder, sets up its .venv (`make setup`, before the load:
it is the network's part), then starts one CPU burner per core at normal priority and runs `make test`
there RUNS times, stopping at the first failure. The burners are ended by their pids when it finishes or is stopped (Ctrl-C, SIGTERM), and
each one exits by itself after `--max-hours` whatever happens. Each run's output is kept in a log file;
the clone is removed when every run passed, kept for inspection otherwise.

Standard library only, so `python3 -m devtools.under_load` works before any environment is set up.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType

__all__ = ["main"]

ROOT = Path(__file__).resolve().parents[1]
# a busy loop that ends by itself, so a burner outlives this process by at most its bound
_BURN = "import time\nend = time.monotonic() + {seconds}\nwhile time.monotonic() < end:\n    pass\n"
# make's own variables from an outer `make test-under-load`: the runs are top-level makes of the clone
_MAKE_VARIABLES = ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES")
_GRACE_SECONDS = 30


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _start_burners(count: int, seconds: float) -> list[subprocess.Popen[bytes]]:
    code = _BURN.format(seconds=seconds)
    return [subprocess.Popen([sys.executable, "-c", code]) for _ in range(count)]


def _stop(burners: list[subprocess.Popen[bytes]]) -> None:
    for burner in burners:
        if burner.poll() is None:
            burner.kill()
    for burner in burners:
        burner.wait()


def _stop_on_sigterm(number: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + number)  # unwinds through the `finally` that ends the burners


def _make(clone: Path, arguments: list[str], log: Path) -> tuple[int, float]:
    """(exit status, seconds) of `make ARGUMENTS` in `clone`, its output written to `log` and echoed."""
    environment = {name: value for name, value in os.environ.items() if name not in _MAKE_VARIABLES}
    started = time.monotonic()
    with log.open("wb") as output:
        process = subprocess.Popen(
            ["make", "--no-print-directory", *arguments],
            cwd=clone,
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, ended as a whole if this run is stopped
        )
        assert process.stdout is not None
        try:
            for line in process.stdout:
                output.write(line)
                sys.stdout.buffer.write(line)
                sys.stdout.flush()
            status = process.wait()
        finally:
            _end_group(process)
    return status, time.monotonic() - started


def _end_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to a still running `make test` and everything it started, SIGKILL after a grace period."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.under_load", description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="make test this many times (default 5)")
    parser.add_argument("--pytest-args", default="", help="passed to make test as PYTEST_ARGS")
    parser.add_argument(
        "--max-hours", type=float, default=6, help="each burner exits by itself after this (default 6)"
    )
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")

    scratch = Path(tempfile.mkdtemp(prefix="nexus-under-load-"))
    clone = scratch / "nexus-template"
    subprocess.run(["git", "clone", "--quiet", "--no-hardlinks", str(ROOT), str(clone)], check=True)
    head = subprocess.run(
        ["git", "log", "-1", "--format=%h %s"], cwd=clone, capture_output=True, text=True, check=True
    ).stdout.strip()
    cores = _cores()
    previous = signal.signal(signal.SIGTERM, _stop_on_sigterm)
    burners: list[subprocess.Popen[bytes]] = []
    results: list[tuple[int, int, float, Path]] = []
    try:
        print(f"clone of {head}\n  in {clone}\nmake setup (no load yet)", flush=True)
        status, seconds = _make(clone, ["setup"], scratch / "setup.log")
        if status != 0:
            print(f"make setup failed (exit {status}); clone and log kept in {scratch}")
            return 1
        print(f"set up in {seconds:.0f} s; {cores} CPU burner(s); make test x{args.runs}", flush=True)
        burners = _start_burners(cores, args.max_hours * 3600)
        for run in range(1, args.runs + 1):
            log = scratch / f"run-{run}.log"
            print(
                f"\n=== run {run}/{args.runs}: make test PYTEST_ARGS={shlex.quote(args.pytest_args)}",
                flush=True,
            )
            status, seconds = _make(clone, ["test", f"PYTEST_ARGS={args.pytest_args}"], log)
            results.append((run, status, seconds, log))
            if status != 0:
                break
    except (KeyboardInterrupt, SystemExit):
        print(f"\ninterrupted: burners and make test ended; clone and logs kept in {scratch}", flush=True)
        raise
    finally:
        _stop(burners)
        signal.signal(signal.SIGTERM, previous)

    print(f"\n=== under load ({cores} burner(s)), {head}")
    passed = sum(1 for _, status, _, _ in results if status == 0)
    for run, status, seconds, log in results:
        outcome = "passed" if status == 0 else f"FAILED (exit {status}), log: {log}"
        print(f"run {run}: {outcome} in {seconds:.0f} s")
    if passed == args.runs:
        shutil.rmtree(scratch)
        print(f"{passed} of {args.runs} runs passed in a row (clone removed)")
        return 0
    print(f"stopped at run {len(results)}: {passed} of {args.runs} passed; clone and logs kept in {scratch}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
