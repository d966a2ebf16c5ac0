# Managed by nexus-template: `copier update` replaces this file. Your code belongs in app/service.py.
"""Container health check: exit 0 when GET /health on SERVICE_PORT answers 200, else 1.

Stdlib only and without the platform library, so a check costs an interpreter start, not the app's imports
(slim images have no curl). With TLS_CERT_FILE set the service speaks only HTTPS, and so does the check.
"""

import os
import ssl
import sys
import urllib.request

PORT = os.environ.get("SERVICE_PORT") or "9000"
CERT, KEY = os.environ.get("TLS_CERT_FILE"), os.environ.get("TLS_KEY_FILE")

context = None
if CERT:
    # its own listener on 127.0.0.1, which the certificate does not name: encrypted, not authenticated
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if os.environ.get("TLS_CLIENT_CA_FILE"):
        context.load_cert_chain(CERT, KEY)  # mutual TLS: the service's certificate is its client's too
URL = f"{'https' if context else 'http'}://127.0.0.1:{PORT}/health"
try:
    with urllib.request.urlopen(URL, timeout=3, context=context) as response:  # noqa: S310  # http(s) only
        sys.exit(0 if response.status == 200 else 1)
except OSError:
    sys.exit(1)
