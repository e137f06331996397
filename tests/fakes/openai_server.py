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
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any, ClassVar

from tests.fakes.http_server import LocalHttpServer

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
class FakeOpenAIServer(LocalHttpServer):
    MODES: ClassVar[tuple[str, ...]] = MODES
    METHODS: ClassVar[tuple[str, ...]] = ("POST",)
    THREAD_NAME: ClassVar[str] = "fake-openai"

    analysis: dict[str, Any] = field(default_factory=default_analysis)
    mode: str = "ok"
    slow_seconds: float = 5.0
    model: str = "deepseek-chat"
    calls: list[RecordedCall] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__post_init__()
        self._counter = 0

    @property
    def base_url(self) -> str:
        """The OpenAI-style base URL (with /v1)."""
        return f"{self.origin}/v1"

    # behaviour -----------------------------------------------------------------------
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
