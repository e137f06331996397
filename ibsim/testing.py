"""Helpers for tests and benchmarks of any part of the suite that needs a gateway.

Two ways to get a running simulator on a free 127.0.0.1 port:

* `start_server(port=0, **engine_kwargs)`: a real `python -m ibsim` subprocess, exactly what
  users run. Waits for the "ibsim listening on" line (with a timeout); `.stop()` ends it by
  PID (terminate, then kill) via psutil. Use it as a context manager.
* `start_inprocess(port=0, **engine_kwargs)`: the same server on a background thread with its
  own event loop; faster to start (no interpreter launch) and lets a test reach the engine
  with `.call(fn)`. Same `.port` / `.stop()`.

engine_kwargs are the command-line options as keywords: start (datetime or ISO text), speed,
seed, tape, symbols (list or "A,B"), state_file, scenario, max_version, tick_interval,
partial_fills, allow_short, stamp_ticks, log_level.
"""

from __future__ import annotations

import asyncio
import os
import queue
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import psutil  # type: ignore[import-untyped, unused-ignore]  # no stubs installed

from ibsim.cli import build_parser, config_from_args, make_engine
from ibsim.engine.sim import SimEngine
from ibsim.gateway.app import IbsimServer
from ibsim.gateway.hub import Gateway
from ibsim.wire.protocol import frame, frame_bytes

READY_PREFIX = "ibsim listening on "
T = TypeVar("T")


class ServerStartError(RuntimeError):
    """The simulator did not come up (the message carries its output)."""


def _flag_args(engine_kwargs: dict[str, Any]) -> list[str]:
    args: list[str] = []
    for key, value in engine_kwargs.items():
        if value is None or value is False:
            continue
        flag = "--" + key.replace("_", "-")
        if value is True:
            args.append(flag)
            continue
        if key == "scenario_file":
            flag = "--scenario"
        if isinstance(value, datetime):
            value = value.isoformat()
        elif isinstance(value, list | tuple):
            value = ",".join(map(str, value))
        args += [flag, str(value)]
    return args


class ServerHandle:
    """A `python -m ibsim` subprocess."""

    def __init__(self, proc: subprocess.Popen[str], port: int, lines: list[str]) -> None:
        self.proc = proc
        self.pid = proc.pid
        self.port = port
        self.output = lines  # stderr+stdout lines collected so far (a reader thread appends)

    def __enter__(self) -> ServerHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 10.0) -> int | None:
        """Graceful stop by PID (SIGTERM; Windows: CTRL_BREAK), then kill if it hangs."""
        if self.proc.poll() is not None:
            return self.proc.returncode
        try:
            p = psutil.Process(self.pid)
            if sys.platform == "win32":
                os.kill(self.pid, signal.CTRL_BREAK_EVENT)  # type: ignore[attr-defined]
            else:
                p.terminate()
            try:
                p.wait(timeout)
            except psutil.TimeoutExpired:
                p.kill()
                p.wait(timeout)
        except psutil.NoSuchProcess:
            pass
        return self.proc.wait(timeout)


def start_server(port: int = 0, *, timeout: float = 30.0, python: str | None = None,
                 cwd: str | Path | None = None, **engine_kwargs: Any) -> ServerHandle:
    """Start `python -m ibsim --port PORT ...` and wait for its ready line."""
    cmd = [python or sys.executable, "-m", "ibsim", "--port", str(port), *_flag_args(engine_kwargs)]
    root = Path(__file__).resolve().parent.parent
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH")]))
    env.setdefault("PYTHONUNBUFFERED", "1")
    flags = getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0)  # Windows: CTRL_BREAK target
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            cwd=str(cwd or root), env=env, bufsize=1, creationflags=flags)
    lines: list[str] = []
    ready: queue.Queue[str | None] = queue.Queue()

    def reader() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            if line.startswith(READY_PREFIX):
                ready.put(line.strip())
        ready.put(None)

    threading.Thread(target=reader, name=f"ibsim-{proc.pid}-out", daemon=True).start()
    try:
        line = ready.get(timeout=timeout)
    except queue.Empty:
        line = None
    if line is None:
        handle = ServerHandle(proc, 0, lines)
        handle.stop()
        raise ServerStartError(f"ibsim did not start within {timeout}s: {' | '.join(lines[-15:])}")
    bound = int(line.rsplit(":", 1)[1])
    return ServerHandle(proc, bound, lines)


class InProcessServer:
    """The server on a background thread (its own asyncio loop)."""

    def __init__(self, port: int = 0, **engine_kwargs: Any) -> None:
        self._kwargs = engine_kwargs
        self._requested_port = port
        self.port = 0
        self.server: IbsimServer | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None

    def __enter__(self) -> InProcessServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, timeout: float = 30.0) -> InProcessServer:
        self._thread = threading.Thread(target=self._run, name="ibsim-inprocess", daemon=True)
        self._thread.start()
        if not self._started.wait(timeout):
            raise ServerStartError(f"in-process ibsim did not start within {timeout}s")
        if self._error is not None:
            raise ServerStartError(f"in-process ibsim failed: {self._error!r}") from self._error
        return self

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self.loop = loop
        try:
            ns = build_parser().parse_args(
                ["--port", str(self._requested_port), *_flag_args(self._kwargs)])
            engine = make_engine(config_from_args(ns))
            self.server = IbsimServer(engine, port=ns.port, max_version=ns.max_version,
                                      stamp_ticks=ns.stamp_ticks)
            self.port = loop.run_until_complete(self.server.start())
        except BaseException as exc:  # reported to start()
            self._error = exc
            self._started.set()
            loop.close()
            return
        self._started.set()
        try:
            loop.run_until_complete(self.server.wait_stopped())
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    @property
    def gateway(self) -> Gateway:
        assert self.server is not None, "start() first"
        return self.server.gateway

    @property
    def engine(self) -> SimEngine:
        assert self.server is not None, "start() first"
        assert isinstance(self.server.engine, SimEngine)
        return self.server.engine

    def call(self, fn: Callable[[], T], timeout: float = 10.0) -> T:
        """Run fn() on the server's loop thread and return its result."""
        assert self.loop is not None

        async def runner() -> T:
            return fn()

        return asyncio.run_coroutine_threadsafe(runner(), self.loop).result(timeout)

    def stop(self, timeout: float = 10.0) -> None:
        if (self.loop is None or self.server is None or self._thread is None
                or not self._thread.is_alive()):
            return
        self.loop.call_soon_threadsafe(self.server.request_stop)
        self._thread.join(timeout)


def start_inprocess(port: int = 0, *, timeout: float = 30.0, **engine_kwargs: Any) -> InProcessServer:
    return InProcessServer(port, **engine_kwargs).start(timeout)


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0, interval: float = 0.02) -> bool:
    """Poll (blocking) until predicate() is true; False on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


class RawClient:
    """A minimal blocking TWS socket client for wire-level tests (handshake, raw frames,
    deliberately broken input). Every read has a timeout."""

    def __init__(self, port: int, host: str = "127.0.0.1", timeout: float = 5.0) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.timeout = timeout
        self.buf = bytearray()
        self.server_version = 0

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send(self, *fields: object) -> None:
        self.sock.sendall(frame(fields))

    def handshake(self, lo: int = 157, hi: int = 178, options: str = "") -> int:
        text = f"v{lo}..{hi}" + (f" {options}" if options else "")
        self.sock.sendall(b"API\0" + frame_bytes(text.encode()))
        reply = self.read()
        if reply is None:
            raise ConnectionError("server closed the connection during the handshake")
        self.server_version = int(reply[0])
        return self.server_version

    def start_api(self, client_id: int) -> list[list[str]]:
        """startApi; returns the messages up to and including managedAccounts."""
        self.send(71, 2, client_id, "")
        got: list[list[str]] = []
        while True:
            m = self.read()
            if m is None:
                raise ConnectionError(f"server closed the connection after startApi: {got}")
            got.append(m)
            if m[0] == "15":
                return got

    def read(self, timeout: float | None = None) -> list[str] | None:
        """Next message as fields; None when the server closed the socket. TimeoutError if
        nothing arrives in time."""
        self.sock.settimeout(timeout if timeout is not None else self.timeout)
        while True:
            if len(self.buf) >= 4:
                (n,) = struct.unpack(">I", self.buf[:4])
                if len(self.buf) >= 4 + n:
                    body = bytes(self.buf[4:4 + n])
                    del self.buf[:4 + n]
                    fields = body.decode().split("\0")
                    fields.pop()
                    return fields
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError as exc:
                raise TimeoutError("no message from ibsim in time") from exc
            except (ConnectionResetError, ConnectionAbortedError):
                return None
            if not chunk:
                return None
            self.buf += chunk

    def read_until(self, predicate: Callable[[list[str]], bool],
                   timeout: float | None = None) -> tuple[list[str], list[list[str]]]:
        """Read until a message matches; returns (match, everything read before it)."""
        seen: list[list[str]] = []
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no matching message; got {seen[-10:]}")
            m = self.read(left)
            if m is None:
                raise ConnectionError(f"closed before a matching message; got {seen[-10:]}")
            if predicate(m):
                return m, seen
            seen.append(m)

    def wait_closed(self, timeout: float | None = None) -> bool:
        """True once the server has closed the socket (messages before that are dropped)."""
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        while time.monotonic() < deadline:
            try:
                if self.read(max(deadline - time.monotonic(), 0.01)) is None:
                    return True
            except TimeoutError:
                return False
        return False


def ib_wait_until(ib: Any, predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Run an ib_insync IB's event loop (ib.sleep) until predicate() holds; False on timeout.

    ib_insync aborts a running ib.sleep with ConnectionError when ANY of its connections drops
    (a global event); that is swallowed here so tests can wait for a disconnect."""
    deadline = time.monotonic() + timeout
    while not predicate():
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        try:
            ib.sleep(min(0.02, left))
        except ConnectionError:
            pass
    return True
