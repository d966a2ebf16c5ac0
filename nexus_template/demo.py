"""`make demo`: render a service with default answers into .demo/ and serve it until Ctrl-C."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from nexus_template.render import PYTHON, ROOT, copy_working_tree, render

SERVICE_NAME = "demo-service"


def main() -> int:
    port = os.environ.get("DEMO_PORT", "9000")
    destination = ROOT / ".demo" / SERVICE_NAME
    shutil.rmtree(destination, ignore_errors=True)
    with tempfile.TemporaryDirectory() as scratch:
        render(copy_working_tree(Path(scratch) / "template"), destination, {"service_name": SERVICE_NAME})
    base = f"http://127.0.0.1:{port}"
    print(f"Rendered {destination.relative_to(ROOT)} (default answers). Serving it; Ctrl-C stops it. Try:")
    for path in ("/health", "/readyz", "/v1/metadata", "/v1/models", "/schema"):
        print(f"  curl {base}{path}")
    print(f"""  curl -X POST {base}/v1/echo -H 'content-type: application/json' -d '{{"input": "hi"}}'\n""")
    environment = {**os.environ, "SERVICE_HOST": "127.0.0.1", "SERVICE_PORT": port, "DRAIN_SECONDS": "0"}
    try:
        return subprocess.call([PYTHON, "-m", "app"], cwd=destination, env=environment)
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
