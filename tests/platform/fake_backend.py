"""A small OpenAI-compatible backend for the tests of a wrapper service (Identity.backend "openai"): a real
HTTP server, in a thread.

Its answers follow the OpenAI API; a few model names make it misbehave: `missing-model` (404),
`failing-model` (500), `busy-model` (503 with Retry-After), `slow-model` (answers after 3 s),
`broken-stream-model` (a stream that breaks off after its first chunk).
"""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

MODELS = {
    "object": "list",
    "data": [{"id": "backend-model", "object": "model", "created": 0, "owned_by": "tests"}],
}
FAILURES = {"missing-model": 404, "failing-model": 500, "busy-model": 503}


def _error(status: int) -> bytes:
    body = {
        "message": f"backend says {status}",
        "type": "invalid_request_error",
        "param": "model",
        "code": "x",
    }
    return json.dumps({"error": body}).encode()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    requests: ClassVar[list[tuple[str, str]]] = []  # (path, x-request-id) of every POST

    def _send(self, status: int, body: bytes, content_type: str = "application/json", **headers: str) -> None:
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path == "/v1/models":
            self._send(200, json.dumps(MODELS).encode())
        else:
            self._send(404, _error(404))

    def do_POST(self) -> None:
        request = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))))
        type(self).requests.append((self.path, self.headers.get("x-request-id", "")))
        model = request.get("model")
        if model in FAILURES:
            status = FAILURES[model]
            self._send(status, _error(status), **({"retry_after": "1"} if status == 503 else {}))
            return
        if model == "slow-model":
            time.sleep(3)
        answer = _ANSWERS.get(self.path)
        if answer is None:
            self._send(404, _error(404))
        elif self.path == "/v1/chat/completions" and request.get("stream"):
            self._stream_chat(model)
        else:
            body, content_type = answer(request)
            self._send(200, body, content_type)

    def _stream_chat(self, model: str) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("connection", "close")
        self.end_headers()
        for index, word in enumerate(("Hello", " from", " the", " backend")):
            if index == 1 and model == "broken-stream-model":
                self.wfile.write(b'data: {"trunc')  # then the connection closes mid-event
                self.wfile.flush()
                self.close_connection = True
                return
            chunk = {
                "id": "chatcmpl-backend",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": model,
                "choices": [{"index": 0, "delta": {"content": word}, "finish_reason": None}],
            }
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
            self.wfile.flush()
        self.wfile.write(b"data: [DONE]\n\n")
        self.close_connection = True

    def log_message(self, *args: object) -> None:
        pass


def _chat(request: dict) -> tuple[bytes, str]:
    message = {"role": "assistant", "content": "Hello from the backend", "refusal": None}
    choice = {"index": 0, "message": message, "finish_reason": "stop", "logprobs": None}
    usage = {"prompt_tokens": 1, "completion_tokens": 4, "total_tokens": 5}
    answer = {"id": "chatcmpl-backend", "object": "chat.completion", "created": 0, "model": request["model"]}
    return json.dumps({**answer, "choices": [choice], "usage": usage}).encode(), "application/json"


def _embeddings(request: dict) -> tuple[bytes, str]:
    inputs = request["input"] if isinstance(request["input"], list) else [request["input"]]
    data = [{"object": "embedding", "index": index, "embedding": [0.6, 0.8]} for index in range(len(inputs))]
    usage = {"prompt_tokens": 1, "total_tokens": 1}
    return json.dumps({"object": "list", "data": data, "model": request["model"], "usage": usage}).encode(), (
        "application/json"
    )


def _speech(request: dict) -> tuple[bytes, str]:
    return b"\xff\xfb\x90\x64" + bytes(413), "audio/mpeg"


def _images(request: dict) -> tuple[bytes, str]:
    return json.dumps({"created": 0, "data": [{"b64_json": "iVBORw0KGgo="}]}).encode(), "application/json"


_ANSWERS = {
    "/v1/chat/completions": _chat,
    "/v1/embeddings": _embeddings,
    "/v1/audio/speech": _speech,
    "/v1/images/generations": _images,
}


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # the tests' clients give up on slow answers on purpose


def start() -> tuple[str, type[_Handler]]:
    """Start the backend on a free port; return its URL and its handler class (which records requests)."""
    server = _Server(("127.0.0.1", 0), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}", _Handler
