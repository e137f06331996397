"""The asyncio TCP server: one listening socket on 127.0.0.1 for API clients and ctl commands.

Why sniff the first 4 bytes: TWS clients open with b"API\\0", control clients with b"CTL\\0"
(see COMMON.md), so one port serves both and a test or operator script needs nothing but the
port number. Anything else is logged and closed without disturbing other clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Callable

from ibsim.ctl import CtlConnection
from ibsim.gateway import Gateway
from ibsim.model import DEFAULT_PORT, REAL_IB_PORTS, Engine
from ibsim.wire.protocol import API_MAGIC, CTL_MAGIC, MAX_SERVER_VERSION
from ibsim.wire.session import Session

log = logging.getLogger("ibsim.server")

HOST = "127.0.0.1"


class PortRefused(ValueError):
    """The port is one of the real IB ports (or otherwise unusable)."""


def check_port(port: int) -> int:
    if port in REAL_IB_PORTS:
        raise PortRefused(
            f"port {port} is a real Interactive Brokers port "
            f"({', '.join(map(str, sorted(REAL_IB_PORTS)))}); ibsim never listens there so it "
            f"cannot be mistaken for a live gateway. Use --port {DEFAULT_PORT} (the default) "
            "or --port 0 for any free port."
        )
    if not 0 <= port <= 65535:
        raise PortRefused(f"port {port} is not a TCP port number (0-65535)")
    return port


class _Connection(asyncio.Protocol):
    """Sniffs the greeting, then hands every byte to a Session or a CtlConnection."""

    def __init__(self, server: IbsimServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.peer = "?"
        self._greeting = bytearray()
        self.target: Session | CtlConnection | None = None
        self.done = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if peer else "?"
        transport.set_write_buffer_limits(high=1 << 30)

    def data_received(self, data: bytes) -> None:
        if self.target is not None:
            self.target.data_received(data)
            return
        if self.done or self.transport is None:
            return
        self._greeting += data
        if len(self._greeting) < 4:
            return
        magic, rest = bytes(self._greeting[:4]), bytes(self._greeting[4:])
        self._greeting.clear()
        gw = self.server.gateway
        if magic == API_MAGIC:
            if gw.refusing():
                log.warning("refusing API connection from %s (simulated gateway restart)",
                            self.peer)
                self.done = True
                self.transport.abort()
                return
            session = Session(gw, self.transport, self.peer)
            gw.add_session(session)
            self.target = session
        elif magic == CTL_MAGIC:
            self.target = CtlConnection(self.server, self.transport)
        else:
            log.error("connection from %s opened with %r, neither API nor CTL: closing it",
                      self.peer, magic)
            self.done = True
            self.transport.close()
            return
        if rest:
            self.target.data_received(rest)

    def connection_lost(self, exc: Exception | None) -> None:
        if isinstance(self.target, Session):
            self.server.gateway.remove_session(self.target)


class IbsimServer:
    """Engine + gateway + listening socket. `await start()`, then `await wait_stopped()`."""

    def __init__(self, engine: Engine, *, port: int = DEFAULT_PORT,
                 max_version: int = MAX_SERVER_VERSION, stamp_ticks: bool = False) -> None:
        self.engine = engine
        self.port = check_port(port)
        self.gateway = Gateway(engine, max_version=max_version, stamp_ticks=stamp_ticks)
        self._server: asyncio.Server | None = None
        self._engine_task: asyncio.Task[None] | None = None
        self._stopped: asyncio.Event | None = None
        self.failed = False  # the engine died: the process should exit non-zero

    async def start(self) -> int:
        """Listen and start the engine; returns the bound port."""
        loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        # asyncio's default reuse_address: SO_REUSEADDR on POSIX only (on Windows it would let
        # a second ibsim bind the same port)
        self._server = await loop.create_server(lambda: _Connection(self), HOST, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        self._engine_task = asyncio.create_task(self.engine.run(), name="ibsim-engine")
        self._engine_task.add_done_callback(self._engine_done)
        return self.port

    def _engine_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("the engine stopped with an error", exc_info=task.exception())
            self.failed = True
            self.request_stop()

    def request_stop(self) -> None:
        if self._stopped is not None:
            self._stopped.set()

    async def wait_stopped(self) -> None:
        assert self._stopped is not None, "start() first"
        await self._stopped.wait()
        await self.close()

    async def close(self) -> None:
        """Stop listening, close every client, stop the engine (it saves its state)."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for s in list(self.gateway.sessions):
            s.close("simulator shutting down")
            self.gateway.remove_session(s)
        self.engine.stop()
        if self._engine_task is not None:
            try:
                await asyncio.wait_for(self._engine_task, timeout=5.0)
            except (TimeoutError, asyncio.CancelledError):
                self._engine_task.cancel()
            except Exception:  # already logged by _engine_done
                pass
            self._engine_task = None


def install_stop_signals(loop: asyncio.AbstractEventLoop, stop: Callable[[], None]) -> None:
    """Ctrl+C / SIGTERM on POSIX; Ctrl+C / CTRL_BREAK on Windows."""
    if sys.platform == "win32":
        def handler(signum: int, frame: object) -> None:
            loop.call_soon_threadsafe(stop)

        signal.signal(signal.SIGINT, handler)
        if hasattr(signal, "SIGBREAK"):
            signal.signal(signal.SIGBREAK, handler)
        return
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop)


async def serve(engine: Engine, *, port: int, max_version: int = MAX_SERVER_VERSION,
                stamp_ticks: bool = False, announce: Callable[[str], None] | None = None) -> bool:
    """Run until a stop signal: the `python -m ibsim` main loop. False if the engine died."""
    server = IbsimServer(engine, port=port, max_version=max_version, stamp_ticks=stamp_ticks)
    bound = await server.start()
    install_stop_signals(asyncio.get_running_loop(), server.request_stop)
    line = f"ibsim listening on {HOST}:{bound}"
    if announce is not None:
        announce(line)
    else:
        print(line, flush=True)
    await server.wait_stopped()
    log.info("ibsim stopped")
    return not server.failed
