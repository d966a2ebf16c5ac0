"""`make demo` ends the service it started, whichever way it is stopped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from devtools.live import free_port, wait_for_health
from devtools.render import ROOT

pytestmark = pytest.mark.xdist_group("demo")  # one .demo/ folder


# Shells start background jobs with SIGINT ignored, and the children inherit it: a terminal's job has it.
_WITH_DEFAULT_SIGINT = "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); os.execvp(sys.argv[1], sys.argv[1:])"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _service_pid(port: int) -> int:
    """The pid of the process listening on 127.0.0.1:`port` (from /proc/net/tcp and the fd tables)."""
    inode = next(
        fields[9]
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]
        if (fields := line.split())[1].endswith(f":{port:04X}") and fields[3] == "0A"
    )
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                links = [os.readlink(f"/proc/{entry}/fd/{fd}") for fd in os.listdir(f"/proc/{entry}/fd")]
            except OSError:
                continue
            if f"socket:[{inode}]" in links:
                return int(entry)
    raise AssertionError(f"no process listens on {port}")


@pytest.mark.parametrize("number", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
@pytest.mark.parametrize("command", [["make", "--no-print-directory", "demo"], None], ids=["make", "module"])
def test_stopping_the_demo_stops_its_service(command: list[str] | None, number: int) -> None:
    port = free_port()
    argv = command or [str(ROOT / ".venv" / "bin" / "python"), "-m", "devtools.demo"]
    if command is None and not (ROOT / ".venv").is_dir():
        argv[0] = "python3"
    demo = subprocess.Popen(
        [sys.executable, "-c", _WITH_DEFAULT_SIGINT, *argv],
        cwd=ROOT,
        env={**os.environ, "DEMO_PORT": str(port)},
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,  # a group of its own, as a terminal's foreground job
    )
    try:
        wait_for_health(f"http://127.0.0.1:{port}/health", died=lambda: demo.poll() is not None, timeout=60)
        service = _service_pid(port)
        assert service != demo.pid
        if number == signal.SIGINT:
            os.killpg(demo.pid, number)  # Ctrl-C: the terminal signals the whole foreground group
        else:
            demo.send_signal(number)  # to the first pid only, as a process manager or CI step does
        status = demo.wait(timeout=40)
        # make dies of the signal (its own behaviour); the demo module drains its service and exits 0
        assert status == (-number if command else 0)
        deadline = time.monotonic() + 10
        while _pid_alive(service) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _pid_alive(service), "the demo's service outlived it"
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
