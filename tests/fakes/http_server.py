"""The shared part of the fake web services: a threaded HTTP server on 127.0.0.1, port 0.

Why a base: every fake (Polygon, the OpenAI-style LLM endpoint, an alert webhook) needs the
same lifecycle (start on a free loopback port, stop by shutting the server down and joining
its thread, usable as a context manager), the same "modes" switch (server.mode, or
server.queue(*modes) for the next requests, then back to mode), a stop event that cuts
"slow" answers short, and replies that survive a client that gave up (timeout tests).

A subclass is a dataclass with a `mode: str` field, sets MODES (and METHODS, THREAD_NAME),
and implements `_handle(h)`; it records requests itself (under `self._lock`), because each
fake records what its tests look at.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar, Self


class LocalHttpServer:
    MODES: ClassVar[tuple[str, ...]] = ("ok",)
    METHODS: ClassVar[tuple[str, ...]] = ("GET",)  # HTTP methods answered; others get 501
    THREAD_NAME: ClassVar[str] = "fake-http"
    mode: str

    def __post_init__(self) -> None:
        self._queued: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # lifecycle -----------------------------------------------------------------------
    def start(self) -> Self:
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_class(self._handle,
                                                                           self.METHODS))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True,
                                        name=self.THREAD_NAME)
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

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def origin(self) -> str:
        """http://127.0.0.1:<port>, once started."""
        assert self._httpd is not None, "server not started"
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    # modes ---------------------------------------------------------------------------
    def queue(self, *modes: str) -> None:
        """Answer the next requests with these modes, in order, then with `mode` again."""
        for m in modes:
            if m not in self.MODES:
                raise ValueError(f"unknown mode {m!r}; expected one of {self.MODES}")
        with self._lock:
            self._queued.extend(modes)

    def _next_mode(self) -> str:
        with self._lock:
            return self._queued.pop(0) if self._queued else self.mode

    # answering -----------------------------------------------------------------------
    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        raise NotImplementedError

    @staticmethod
    def _send(h: BaseHTTPRequestHandler, status: int, body: dict[str, Any],
              headers: dict[str, str] | None = None) -> None:
        LocalHttpServer._send_raw(h, status, json.dumps(body).encode(), "application/json",
                                  headers)

    @staticmethod
    def _send_raw(h: BaseHTTPRequestHandler, status: int, body: bytes,
                  content_type: str | None, headers: dict[str, str] | None = None) -> None:
        try:
            h.send_response(status)
            if content_type is not None:
                h.send_header("Content-Type", content_type)
            h.send_header("Content-Length", str(len(body)))
            for k, v in (headers or {}).items():
                h.send_header(k, v)
            h.end_headers()
            h.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout test): nothing to answer


def _handler_class(handle: Callable[[BaseHTTPRequestHandler], None],
                   methods: tuple[str, ...]) -> type[BaseHTTPRequestHandler]:
    """A request handler class that passes the given methods to `handle`, silently."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    for method in methods:
        setattr(Handler, f"do_{method}", lambda h: handle(h))
    return Handler
