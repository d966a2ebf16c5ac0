"""`make fuzz`: a long schemathesis campaign against a freshly rendered default service.

`make test` runs a bounded one (tests/test_robustness.py); this one takes minutes. Extra arguments go to
`schemathesis run`, e.g. `make fuzz FUZZ_ARGS="--max-examples 5000 --seed 1"`.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

from devtools.live import LiveService
from devtools.render import copy_working_tree, load_answers, render


def main(arguments: list[str]) -> int:
    with tempfile.TemporaryDirectory() as scratch:
        workdir = Path(scratch)
        service = render(copy_working_tree(workdir / "template"), workdir / "svc", load_answers("default"))
        running = LiveService(service, workdir, environment={"DRAIN_SECONDS": "0", "LOG_LEVEL": "WARNING"})
        try:
            command = [
                str(Path(sys.executable).with_name("schemathesis")), "run", f"{running.url}/schema/openapi.json",
                "--checks", "all", "--max-examples", "2000", *arguments,
            ]  # fmt: skip
            print("$", shlex.join(command), flush=True)
            return subprocess.call(command)
        finally:
            running.stop()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
