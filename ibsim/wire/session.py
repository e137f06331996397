"""One connected TWS API client: handshake state, framing, output buffering, subscriptions.

Why buffered writes: the simulator never awaits a client. Everything a session sends in one
event-loop turn is joined and handed to the transport in a single write at the end of the
turn (call_soon), so a burst of ticks costs one syscall per client, and a client that stops
reading is cut off once its unsent backlog passes `max_buffer_bytes` instead of stalling
everyone else.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from ibsim.model import BarData
from ibsim.wire import encode as msg
from ibsim.wire.protocol import (
    MIN_SERVER_VERSION,
    ProtocolError,
    negotiate_version,
    parse_version_range,
    split_fields,
    split_frames,
)

log = logging.getLogger("ibsim.session")

DEFAULT_MAX_BUFFER_BYTES = 16 * 1024 * 1024


class SessionHost(Protocol):
    """What a session needs from whoever serves it (the gateway): the highest version to
    offer, the server time for the handshake reply, and somewhere to send each request."""

    @property
    def max_version(self) -> int: ...
    def server_time(self) -> datetime: ...
    def dispatch(self, session: Session, fields: list[str]) -> None: ...


@dataclass(slots=True)
class MktSub:
    req_id: int
    symbol: str
    delayed: bool
    req_id_bytes: bytes = b""


@dataclass(slots=True)
class HistSub:
    req_id: int
    symbol: str
    bar_seconds: int
    format_date: int
    use_rth: bool
    current: BarData | None = None


@dataclass(slots=True)
class ScanSub:
    req_id: int
    scan_code: str
    rows: int
    handle: asyncio.TimerHandle | None = None


@dataclass
class Subscriptions:
    mkt: dict[int, MktSub] = field(default_factory=dict)
    bars: dict[int, str] = field(default_factory=dict)  # realtime 5 s bars: reqId -> symbol
    hist: dict[int, HistSub] = field(default_factory=dict)  # keepUpToDate
    scans: dict[int, ScanSub] = field(default_factory=dict)
    account_updates: bool = False
    positions: bool = False
    account_multi: set[int] = field(default_factory=set)


class Session:
    """Created by the server once the first 4 bytes were b"API\\0"."""

    def __init__(self, host: SessionHost, transport: asyncio.Transport, peer: str,
                 max_buffer_bytes: int = DEFAULT_MAX_BUFFER_BYTES) -> None:
        self.host = host
        self.transport = transport
        self.peer = peer
        self.max_buffer_bytes = max_buffer_bytes
        self.sv = 0  # negotiated server version; 0 until the handshake is done
        self.client_id: int | None = None  # set by startApi
        self.market_data_type = 1
        self.auto_bind = False
        self.subs = Subscriptions()
        # what this client was last told, so periodic engine reports send only changes
        self.order_sent: dict[tuple[int, int], tuple[object, ...]] = {}
        self.pos_sent: dict[str, tuple[float, float]] = {}
        self.acct_sent: dict[tuple[str, str], str] = {}
        self.closed = False
        self._inbuf = bytearray()
        self._out: list[bytes] = []
        self._flush_handle: asyncio.Handle | None = None
        self._loop = asyncio.get_running_loop()
        self.frame_arrival = 0.0  # perf_counter when the frame being handled arrived

    def __repr__(self) -> str:
        return f"Session(client_id={self.client_id}, peer={self.peer}, sv={self.sv})"

    @property
    def ready(self) -> bool:
        return self.client_id is not None and not self.closed

    # ------------------------------------------------------------------ output
    def send(self, data: bytes) -> None:
        if self.closed:
            return
        self._out.append(data)
        if self._flush_handle is None:
            self._flush_handle = self._loop.call_soon(self.flush)

    def flush(self) -> None:
        """Write everything queued now (also runs by itself at the end of the loop turn)."""
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        if self.closed or not self._out:
            self._out.clear()
            return
        data = b"".join(self._out) if len(self._out) > 1 else self._out[0]
        self._out.clear()
        self.transport.write(data)
        backlog = self.transport.get_write_buffer_size()
        if backlog > self.max_buffer_bytes:
            log.error("client %s is not reading (%d bytes unsent > %d); dropping it",
                      self.client_id, backlog, self.max_buffer_bytes)
            self.abort()

    def error(self, req_id: int, code: int, message: str) -> None:
        self.send(msg.error(self.sv, req_id, code, message))

    def close(self, reason: str = "") -> None:
        """Send what is queued, then close gracefully."""
        if self.closed:
            return
        if reason:
            log.info("closing %r: %s", self, reason)
        self.flush()
        self.closed = True
        self.transport.close()

    def abort(self) -> None:
        """Drop the socket at once (simulated network failure); unsent data is lost."""
        if self.closed:
            return
        self.closed = True
        self._out.clear()
        self.transport.abort()

    def is_closed(self) -> bool:
        """`closed`, read afresh (a call can close the session between two checks)."""
        return self.closed

    # ------------------------------------------------------------------ input
    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        arrival = time.perf_counter()
        self._inbuf += data
        try:
            bodies = split_frames(self._inbuf)
        except ProtocolError as exc:
            self._protocol_failure(exc)
            return
        for body in bodies:
            if self.is_closed():  # the previous frame may have closed the session
                return
            self.frame_arrival = arrival
            try:
                self._handle_frame(body)
            except ProtocolError as exc:
                self._protocol_failure(exc)
                return

    def _protocol_failure(self, exc: ProtocolError) -> None:
        log.error("malformed input from %r: %s; closing that connection", self, exc)
        if self.sv:
            self.error(-1, 320, f"Error reading request: {exc}")
        self.close()

    def _handle_frame(self, body: bytes) -> None:
        if not self.sv:
            self._handshake(body)
            return
        fields = split_fields(body)
        if self.client_id is None:
            self._expect_start_api(fields)
            return
        self.host.dispatch(self, fields)

    def _handshake(self, body: bytes) -> None:
        lo, hi, options = parse_version_range(body)
        version = negotiate_version(lo, hi, self.host.max_version, MIN_SERVER_VERSION)
        if version is None:
            log.error("client %s offers API versions %d..%d; ibsim speaks %d..%d: closing",
                      self.peer, lo, hi, MIN_SERVER_VERSION, self.host.max_version)
            self.close()
            return
        self.sv = version
        log.debug("handshake with %s: client v%d..%d%s -> server version %d", self.peer, lo,
                  hi, f" ({options})" if options else "", version)
        self.send(msg.server_version_reply(version, self.host.server_time()))

    def _expect_start_api(self, fields: list[str]) -> None:
        if not fields or fields[0] != "71":
            raise ProtocolError(f"expected startApi (71) first, got message {fields[:1]}")
        self.host.dispatch(self, fields)

    def connection_lost(self) -> None:
        self.closed = True
        self._out.clear()
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        for scan in self.subs.scans.values():
            if scan.handle is not None:
                scan.handle.cancel()
