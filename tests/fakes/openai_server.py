"""A local OpenAI-compatible chat-completions server for LLM scoring tests.

Binds 127.0.0.1 on a free port (port 0). Point ChatDeepSeek(base_url=server.base_url) at it
(base_url ends in /v1, so the client POSTs /v1/chat/completions; /chat/completions works
too). It answers the way ChatDeepSeek.with_structured_output() needs:

- a request with "tools" (method="function_calling", the default): one tool call to the
  first tool's function, `arguments` = JSON of `server.analysis`, finish_reason "tool_calls";
- a request with response_format {"type": "json_object"} (method="json_mode"): the JSON of
  `server.analysis` as the message content;
- otherwise: `server.analysis` as JSON text content.

Modes (server.mode, or server.queue(*modes) for the next requests):
  ok         the canned completion above
  malformed  a well-formed completion whose arguments break the schema (confidence 1.7,
             no thesis)
  garbage    HTTP 200 with a body that is not JSON
  slow       waits server.slow_seconds (or until stop) before answering ok
  error      HTTP 500 with an OpenAI-style error body
Every request is recorded with its path, Authorization header and JSON body.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODES = ("ok", "malformed", "garbage", "slow", "error")
PATHS = ("/v1/chat/completions", "/chat/completions")


def default_analysis() -> dict[str, Any]:
    return {"symbol": "MOON", "confidence": 0.86,
            "thesis": "Gapping 20% on 1.5x volume with a clean pre-market range.",
            "risks": ["gap fill", "thin float"]}


@dataclass(frozen=True, slots=True)
class RecordedCall:
    path: str
    authorization: str
    body: dict[str, Any]
    mode: str


@dataclass
class FakeOpenAIServer:
    analysis: dict[str, Any] = field(default_factory=default_analysis)
    mode: str = "ok"
    slow_seconds: float = 5.0
    model: str = "deepseek-chat"
    calls: list[RecordedCall] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._queued: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._counter = 0

    # lifecycle -----------------------------------------------------------------------
    def start(self) -> FakeOpenAIServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                server._handle(self)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True,
                                        name="fake-openai")
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = None

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """The OpenAI-style base URL (with /v1)."""
        assert self._httpd is not None, "server not started"
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def queue(self, *modes: str) -> None:
        for m in modes:
            if m not in MODES:
                raise ValueError(f"unknown mode {m!r}; expected one of {MODES}")
        with self._lock:
            self._queued.extend(modes)

    # behaviour -----------------------------------------------------------------------
    def _next_mode(self) -> str:
        with self._lock:
            return self._queued.pop(0) if self._queued else self.mode

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        path = h.path.split("?", 1)[0]
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = {"_unparseable": raw.decode("utf-8", "replace")}
        mode = self._next_mode()
        with self._lock:
            self.calls.append(RecordedCall(path=path,
                                           authorization=h.headers.get("Authorization", ""),
                                           body=body, mode=mode))
        if path not in PATHS:
            self._send(h, 404, {"error": {"message": f"no route {path}", "type": "not_found"}})
            return
        if body.get("stream"):
            self._send(h, 400, {"error": {"message": "the fake does not stream",
                                          "type": "invalid_request_error"}})
            return
        if mode == "slow":
            self._stop.wait(self.slow_seconds)
            mode = "ok"
        if mode == "garbage":
            self._send_raw(h, 200, b"<<not json at all>>", "application/json")
        elif mode == "error":
            self._send(h, 500, {"error": {"message": "the fake is having a bad day",
                                          "type": "server_error"}})
        else:
            content = self.analysis if mode == "ok" else {"symbol": self.analysis.get(
                "symbol", "MOON"), "confidence": 1.7, "risks": []}
            self._send(h, 200, self._completion(body, content))

    def _completion(self, request: dict[str, Any], content: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            self._counter += 1
            n = self._counter
        text = json.dumps(content)
        tools = request.get("tools") or []
        if tools:
            name = tools[0].get("function", {}).get("name", "tool")
            message: dict[str, Any] = {
                "role": "assistant", "content": None,
                "tool_calls": [{"id": f"call_{n}", "type": "function",
                                "function": {"name": name, "arguments": text}}],
            }
            finish = "tool_calls"
        else:
            message = {"role": "assistant", "content": text}
            finish = "stop"
        return {
            "id": f"chatcmpl-fake-{n}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": request.get("model", self.model),
            "choices": [{"index": 0, "message": message, "logprobs": None,
                         "finish_reason": finish}],
            "usage": {"prompt_tokens": 50, "completion_tokens": 20, "total_tokens": 70},
        }

    @staticmethod
    def _send(h: BaseHTTPRequestHandler, status: int, body: dict[str, Any]) -> None:
        FakeOpenAIServer._send_raw(h, status, json.dumps(body).encode(), "application/json")

    @staticmethod
    def _send_raw(h: BaseHTTPRequestHandler, status: int, body: bytes,
                  content_type: str) -> None:
        try:
            h.send_response(status)
            h.send_header("Content-Type", content_type)
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            h.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout test)
