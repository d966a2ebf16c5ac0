"""`make demo`: render a service with default answers into .demo/ and serve it until Ctrl-C or SIGTERM.

The service runs in its own process group and this process forwards SIGINT and SIGTERM to it and waits for
its drain, so stopping the demo (Ctrl-C, `timeout`, a CI step, a process manager) never leaves it behind.
Under `make demo` a signal reaches only make, which dies without passing it on: on Linux this process asks
the kernel for a SIGTERM when its parent dies (PR_SET_PDEATHSIG), and forwards that one too.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from types import FrameType

from devtools.render import PYTHON, ROOT, copy_working_tree, render

SERVICE_NAME = "demo-service"
# the service drains for DRAIN_SECONDS=0 and then has its grace period; past this it is killed
STOP_TIMEOUT_SECONDS = 30


_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def _stop_with_parent() -> None:
    """SIGTERM to this process when its parent (make) dies; nothing where prctl does not exist."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def serve(destination: Path, environment: dict[str, str]) -> int:
    """Run `python -m app` in `destination` until it exits; SIGINT/SIGTERM here are passed on to it."""
    service = subprocess.Popen(
        [PYTHON, "-m", "app"], cwd=destination, env=environment, start_new_session=True
    )

    def forward(number: int, _frame: FrameType | None) -> None:
        if service.poll() is None:
            service.send_signal(number)

    previous = {number: signal.signal(number, forward) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        return service.wait()
    finally:
        if service.poll() is None:  # this process is ending for another reason: take the service along
            service.terminate()
            try:
                service.wait(timeout=STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                service.kill()
                service.wait()
        for number, handler in previous.items():
            signal.signal(number, handler)


def main() -> int:
    _stop_with_parent()
    port = os.environ.get("DEMO_PORT", "9000")
    destination = ROOT / ".demo" / SERVICE_NAME
    shutil.rmtree(destination, ignore_errors=True)
    with tempfile.TemporaryDirectory() as scratch:
        # the folder is the demo's alone: anything left in it (a previous demo still stopping as it was
        # removed) is overwritten, never asked about
        render(
            copy_working_tree(Path(scratch) / "template"),
            destination,
            {"service_name": SERVICE_NAME},
            overwrite=True,
        )
    base = f"http://127.0.0.1:{port}"
    print(f"Rendered {destination.relative_to(ROOT)} (default answers). Serving it; Ctrl-C stops it. Try:")
    for path in ("/health", "/readyz", "/v1/metadata", "/v1/models", "/schema"):
        print(f"  curl {base}{path}")
    print(f"""  curl -X POST {base}/v1/echo -H 'content-type: application/json' -d '{{"input": "hi"}}'\n""")
    sys.stdout.flush()
    environment = {**os.environ, "SERVICE_HOST": "127.0.0.1", "SERVICE_PORT": port, "DRAIN_SECONDS": "0"}
    return serve(destination, environment)


if __name__ == "__main__":
    sys.exit(main())
