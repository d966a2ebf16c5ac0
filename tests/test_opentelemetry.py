"""The OpenTelemetry recipe of docs/operations.md works: a service that adds the SDK in its own code, and
Litestar's OpenTelemetry middleware through ServiceSpec.middleware, exports spans under the trace ids its
logs show, for a trace it continues and for one it starts; outgoing calls stay in the trace. The rendered
service itself never depends on OpenTelemetry (its requirements do not name it)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from devtools.render import run_python
from tests.edits import replaced

SCRIPT = textwrap.dedent(
    """
    import json, threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from litestar import Request, get
    from litestar.plugins.opentelemetry import OpenTelemetryConfig
    from litestar.testing import TestClient
    from opentelemetry import trace
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from nexus_platform import ServiceSpec, create_app, nexus_of
    from nexus_platform._observability.logs import flush_logs

    from app.main import IDENTITY
    from app.service import service

    seen = []

    class Backend(BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append(self.headers.get("traceparent"))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Backend)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    backend = f"http://127.0.0.1:{server.server_address[1]}"

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    HTTPXClientInstrumentor().instrument()

    @get("/v1/call")
    async def call(request: Request) -> dict:
        return {"status": (await nexus_of(request).http.get(backend)).status_code}

    spec = ServiceSpec(
        route_handlers=[*service.route_handlers, call],
        settings=service.settings,
        middleware=[OpenTelemetryConfig().middleware],
    )
    with TestClient(create_app(spec, IDENTITY, environ={"LOG_LEVEL": "INFO"})) as client:
        client.get("/v1/call", headers={"x-request-id": "started"})
        client.get("/v1/call", headers={"x-request-id": "continued", "traceparent": "PARENT"})
    flush_logs()  # the JSON log lines go first on stdout, then the result
    spans = [
        {"name": span.name, "trace_id": format(span.context.trace_id, "032x"), "kind": span.kind.name}
        for span in exporter.get_finished_spans()
    ]
    print(json.dumps({"spans": spans, "backend": seen}))
    """
)
TRACE = "0af7651916cd43dd8448eb211c80319c"


def test_the_documented_opentelemetry_recipe_exports_the_logged_traces(rendered, tmp_path: Path) -> None:
    service = rendered("default")
    assert "opentelemetry" not in (service / "requirements.txt").read_text()
    script = tmp_path / "otel_recipe.py"
    script.write_text(replaced(SCRIPT, "PARENT", f"00-{TRACE}-b7ad6b7169203331-01"))
    result = run_python(tmp_path, str(script), PYTHONPATH=str(service))
    assert result.returncode == 0, result.stderr[-3000:]
    *lines, found = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    logged = {line["request_id"]: line["trace_id"] for line in lines if line.get("logger") == "nexus.access"}
    assert logged["continued"] == TRACE
    assert logged["started"] != TRACE
    server_spans = {span["trace_id"] for span in found["spans"] if span["kind"] == "SERVER"}
    client_spans = {span["trace_id"] for span in found["spans"] if span["kind"] == "CLIENT"}
    assert server_spans == client_spans == {logged["started"], TRACE}
    assert sorted(value.split("-")[1] for value in found["backend"]) == sorted([logged["started"], TRACE])
