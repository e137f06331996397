"""The listening side: one TCP socket on 127.0.0.1 for API clients and ctl commands.

Why sniff the first 4 bytes: TWS clients open with b"API\\0", control clients with b"CTL\\0"
(see COMMON.md), so one port serves both and a test or operator script needs nothing but the
port number. Anything else is logged and closed without disturbing other clients. What a
connection becomes is up to the `ConnectionHost` (gateway/app.py): this module only sniffs,
forwards bytes and reports the close.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Callable
from typing import Protocol

from ibsim.ctl import CTL_MAGIC
from ibsim.model import DEFAULT_PORT, REAL_IB_PORTS
from ibsim.wire.protocol import API_MAGIC

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


class Receiver(Protocol):
    """Whatever a connection's bytes go to after the greeting (a Session, a control
    connection)."""

    def data_received(self, data: bytes) -> None: ...


class ConnectionHost(Protocol):
    """What the listener asks of the application for each kind of connection."""

    def open_api(self, transport: asyncio.Transport, peer: str) -> Receiver | None:
        """A TWS client greeted; None means refused (the host has aborted the transport)."""
        ...

    def open_control(self, transport: asyncio.Transport, peer: str) -> Receiver:
        """A control client greeted."""
        ...

    def connection_closed(self, receiver: Receiver) -> None:
        """The socket of an opened connection is gone."""
        ...


class Connection(asyncio.Protocol):
    """Sniffs the greeting, then hands every byte to the receiver the host opened."""

    def __init__(self, host: ConnectionHost) -> None:
        self.host = host
        self.transport: asyncio.Transport | None = None
        self.peer = "?"
        self._greeting = bytearray()
        self.target: Receiver | None = None
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
        if magic == API_MAGIC:
            self.target = self.host.open_api(self.transport, self.peer)
        elif magic == CTL_MAGIC:
            self.target = self.host.open_control(self.transport, self.peer)
        else:
            log.error("connection from %s opened with %r, neither API nor CTL: closing it",
                      self.peer, magic)
            self.transport.close()
        if self.target is None:
            self.done = True
            return
        if rest:
            self.target.data_received(rest)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.target is not None:
            self.host.connection_closed(self.target)


async def listen(host: ConnectionHost, port: int) -> asyncio.Server:
    """Listen on 127.0.0.1:port (0: any free port) for `host`'s connections."""
    # asyncio's default reuse_address: SO_REUSEADDR on POSIX only (on Windows it would let
    # a second ibsim bind the same port)
    loop = asyncio.get_running_loop()
    return await loop.create_server(lambda: Connection(host), HOST, check_port(port))


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
