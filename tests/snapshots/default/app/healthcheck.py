# Managed by nexus-template: `copier update` replaces this file. Your code belongs in app/service.py.
"""Container health check: exit 0 when GET /health on SERVICE_PORT answers 200, else 1.

Stdlib only and without the platform library, so a check costs an interpreter start, not the app's imports
(slim images have no curl).
"""

import os
import sys
import urllib.request

PORT = os.environ.get("SERVICE_PORT") or "9000"

try:
    with urllib.request.urlopen(f"http://127.0.0.1:{PORT}/health", timeout=3) as response:
        sys.exit(0 if response.status == 200 else 1)
except OSError:
    sys.exit(1)
