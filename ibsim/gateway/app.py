"""The running simulator: engine + gateway + listening socket, and the `python -m ibsim` loop.

Why here: this is the one place that knows every part. It builds the Gateway with the request
handlers, serves as the listener's ConnectionHost (an API greeting becomes a Session, a CTL
greeting a control connection on the same gateway), and runs the engine task until a stop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from ibsim.gateway.control import CtlConnection
from ibsim.gateway.handlers import HANDLERS
from ibsim.gateway.hub import Gateway
from ibsim.model import DEFAULT_PORT, Engine
from ibsim.wire.protocol import MAX_SERVER_VERSION
from ibsim.wire.server import HOST, Receiver, check_port, install_stop_signals, listen
from ibsim.wire.session import Session

log = logging.getLogger("ibsim.server")


class IbsimServer:
    """Engine + gateway + listening socket. `await start()`, then `await wait_stopped()`."""

    def __init__(self, engine: Engine, *, port: int = DEFAULT_PORT,
                 max_version: int = MAX_SERVER_VERSION, stamp_ticks: bool = False) -> None:
        self.engine = engine
        self.port = check_port(port)
        self.gateway = Gateway(engine, HANDLERS, max_version=max_version, stamp_ticks=stamp_ticks)
        self._server: asyncio.Server | None = None
        self._engine_task: asyncio.Task[None] | None = None
        self._stopped: asyncio.Event | None = None
        self.failed = False  # the engine died: the process should exit non-zero

    async def start(self) -> int:
        """Listen and start the engine; returns the bound port."""
        self._stopped = asyncio.Event()
        self._server = await listen(self, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        self._engine_task = asyncio.create_task(self.engine.run(), name="ibsim-engine")
        self._engine_task.add_done_callback(self._engine_done)
        return self.port

    # ------------------------------------------------------------------ ConnectionHost
    def open_api(self, transport: asyncio.Transport, peer: str) -> Session | None:
        gw = self.gateway
        if gw.refusing():
            log.warning("refusing API connection from %s (simulated gateway restart)", peer)
            transport.abort()
            return None
        session = Session(gw, transport, peer)
        gw.add_session(session)
        return session

    def open_control(self, transport: asyncio.Transport, peer: str) -> CtlConnection:
        return CtlConnection(self.gateway, transport)

    def connection_closed(self, receiver: Receiver) -> None:
        if isinstance(receiver, Session):
            self.gateway.remove_session(receiver)

    # ------------------------------------------------------------------ lifecycle
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
