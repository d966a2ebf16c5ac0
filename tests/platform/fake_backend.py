"""A small OpenAI-compatible backend for the tests of a wrapper service (Identity.backend "openai"): a real
HTTP server, in a thread.

Its answers follow the OpenAI API; a few model names make it misbehave: `missing-model` (404),
`failing-model` (500), `busy-model` (503 with Retry-After), `vllm-error-model` (400 as vLLM words it), `slow-model` (answers after 3 s),
`broken-stream-model` (a stream that breaks off after its first chunk), `echo-key-model` (401 whose message
echoes the Authorization header it got; as a stream, an error event that does), `huge-<n>` (an answer of n
bytes with its Content-Length), `chunked-<n>` (the same without: chunked), `long-line-<n>` (a stream whose
first line is n bytes without a newline), `sleep-<s>` (answers after s seconds). Embeddings of `dims-<d>`
have d dimensions. A stream asked with stream_options.include_usage ends with a usage chunk. Every POST's
decoded body is recorded (`bodies`), and every request that carried an empty X-Request-ID counted.

`start(api_key=...)` makes it refuse (401) a request without that key; `start(idle_seconds=...)` makes it
close a keep-alive connection idle that long, as servers do.
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


_SENT_CHUNK = 1 << 20


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    requests: ClassVar[list[tuple[str, str]]] = []  # (path, x-request-id) of every POST
    bodies: ClassVar[list[dict]] = []  # the JSON body of every POST, as received
    empty_request_ids: ClassVar[list[str]] = []  # the paths of requests with an empty X-Request-ID
    gets: ClassVar[list[tuple[str, str, str]]] = []  # (path, x-request-id, authorization) of every GET
    api_key: ClassVar[str | None] = None

    def _send(self, status: int, body: bytes, content_type: str = "application/json", **headers: str) -> None:
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()
        self.wfile.write(body)

    def _refused(self) -> bool:
        """Answer 401 when a key is required and this request lacks it."""
        if self.api_key is None or self.headers.get("authorization") == f"Bearer {self.api_key}":
            return False
        self._send(401, _error(401))
        return True

    def _record_ids(self) -> None:
        if self.headers.get("x-request-id") == "":
            type(self).empty_request_ids.append(self.path)

    def do_GET(self) -> None:
        self._record_ids()
        type(self).gets.append(
            (self.path, self.headers.get("x-request-id", ""), self.headers.get("authorization", ""))
        )
        if self._refused():
            return
        if self.path == "/v1/models":
            self._send(200, json.dumps(MODELS).encode())
        else:
            self._send(404, _error(404))

    def do_POST(self) -> None:
        request = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))))
        self._record_ids()
        type(self).requests.append((self.path, self.headers.get("x-request-id", "")))
        type(self).bodies.append(request)
        model = request.get("model")
        if self._refused():
            return
        if model == "echo-key-model" and not request.get("stream"):
            message = f"Incorrect API key provided: {self.headers.get('authorization')}"
            self._send(
                401,
                json.dumps(
                    {
                        "error": {
                            "message": message,
                            "type": "invalid_request_error",
                            "code": "invalid_api_key",
                        }
                    }
                ).encode(),
            )
            return
        if model.startswith(("huge-", "chunked-")):
            kind, _, size = model.partition("-")
            self._send_large(int(size), chunked=kind == "chunked")
            return
        if model == "vllm-error-model":  # vLLM's error body: `code` is the HTTP status, an integer
            detail = {
                "message": "maximum context length is 8192 tokens",
                "type": "BadRequestError",
                "param": None,
                "code": 400,
            }
            self._send(400, json.dumps({"object": "error", **detail, "error": detail}).encode())
            return
        if model in FAILURES:
            status = FAILURES[model]
            self._send(status, _error(status), **({"retry_after": "1"} if status == 503 else {}))
            return
        if model == "slow-model":
            time.sleep(3)
        if model.startswith("sleep-"):
            time.sleep(float(model.removeprefix("sleep-")))
        answer = _ANSWERS.get(self.path)
        if answer is None:
            self._send(404, _error(404))
        elif self.path == "/v1/embeddings" and model.startswith("dims-"):
            self._send_embeddings(len(request["input"]), int(model.removeprefix("dims-")))
        elif self.path == "/v1/chat/completions" and request.get("stream"):
            self._stream_chat(model, usage=bool((request.get("stream_options") or {}).get("include_usage")))
        else:
            body, content_type = answer(request)
            self._send(200, body, content_type)

    def _send_large(self, size: int, *, chunked: bool) -> None:
        """`size` bytes of JSON-looking text, written a MiB at a time (the client may stop reading)."""
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header(*(("transfer-encoding", "chunked") if chunked else ("content-length", str(size))))
        self.end_headers()
        for offset in range(0, size, _SENT_CHUNK):
            block = b" " * min(_SENT_CHUNK, size - offset)
            self.wfile.write(b"%x\r\n%s\r\n" % (len(block), block) if chunked else block)
        if chunked:
            self.wfile.write(b"0\r\n\r\n")

    def _send_embeddings(self, inputs: int, dimensions: int) -> None:
        """An embedding of `dimensions` for each input, written chunked one embedding at a time."""
        vector = json.dumps([0.0123456789] * dimensions).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        parts = [b'{"object":"list","model":"dims","usage":{"prompt_tokens":1,"total_tokens":1},"data":[']
        for index in range(inputs):
            separator = b"," if index else b""
            parts.append(b'%s{"object":"embedding","index":%d,"embedding":%s}' % (separator, index, vector))
        parts.append(b"]}")
        for part in parts:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
        self.wfile.write(b"0\r\n\r\n")

    def _stream_chat(self, model: str, *, usage: bool = False) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("connection", "close")
        self.end_headers()
        if model.startswith("long-line-"):
            self.wfile.write(b"data: ")
            size = int(model.removeprefix("long-line-"))
            for offset in range(0, size, _SENT_CHUNK):
                self.wfile.write(b"x" * min(_SENT_CHUNK, size - offset))
            return
        if model == "echo-key-model":
            error = {
                "message": f"upstream refused {self.headers.get('authorization')}",
                "type": "x",
                "code": "upstream",
            }
            self.wfile.write(f"data: {json.dumps({'error': error})}\n\n".encode())
            return
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
        if usage:
            counts = {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}
            last = {"id": "chatcmpl-backend", "object": "chat.completion.chunk", "created": 0, "model": model}
            self.wfile.write(f"data: {json.dumps({**last, 'choices': [], 'usage': counts})}\n\n".encode())
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
    # the listen backlog: socketserver's 5 resets connections a pooled client opens in a burst
    request_queue_size = 128

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # the tests' clients give up on slow answers on purpose


def start(*, api_key: str | None = None, idle_seconds: float | None = None) -> tuple[str, type[_Handler]]:
    """Start the backend on a free port; return its URL and its handler class (which records requests).

    `api_key`: requests without `Authorization: Bearer <api_key>` are answered 401; `idle_seconds`: a
    keep-alive connection with no request for that long is closed."""
    handler = type(
        "Handler",
        (_Handler,),
        {
            "api_key": api_key,
            "timeout": idle_seconds,
            "requests": [],
            "gets": [],
            "bodies": [],
            "empty_request_ids": [],
        },
    )
    server = _Server(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}", handler
