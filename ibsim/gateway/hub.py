"""The gateway: every connected session, the engine they share, and the fault switches.

Why a hub object: requests (handlers.py, order_handlers.py), engine events (fanout.py) and
control commands (control.py) all need the same registry of sessions by client id and the same
engine; keeping that registry in one place lets each of those modules stay a set of plain
functions over it. The request handlers are handed in (app.py does), so this module does not
depend on the modules that depend on it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from ibsim.gateway.fanout import Fanout
from ibsim.model import ACCOUNT_ID, ContractInfo, Engine
from ibsim.wire import encode as msg
from ibsim.wire.decode import decode_request
from ibsim.wire.protocol import MAX_SERVER_VERSION, ProtocolError
from ibsim.wire.requests import ContractRef, Request
from ibsim.wire.session import Session

log = logging.getLogger("ibsim.gateway")

FARM_MESSAGES = (
    (2104, "Market data farm connection is OK:usfarm"),
    (2106, "HMDS data farm connection is OK:ushmds"),
    (2158, "Sec-def data farm connection is OK:secdefnj"),
)
MSG_CONNECTIVITY_LOST = "Connectivity between IB and Trader Workstation has been lost."
MSG_RESTORED_KEPT = (
    "Connectivity between IB and Trader Workstation has been restored - data maintained. "
    "All data farms are connected: usfarm; ushmds; secdefnj."
)
MSG_RESTORED_LOST = (
    "Connectivity between IB and Trader Workstation has been restored - data lost."
)
MSG_CLIENT_ID_IN_USE = (
    "Unable to connect as the client id is already in use. Retry with a unique client id."
)

Handler = Callable[["Gateway", Session, Any], None]


class Gateway:
    """Owns the sessions; the engine's listener is `self.fanout` (see fanout.py)."""

    def __init__(self, engine: Engine, handlers: Mapping[int, Handler], *,
                 max_version: int = MAX_SERVER_VERSION, stamp_ticks: bool = False,
                 accounts: tuple[str, ...] = (ACCOUNT_ID,)) -> None:
        self.engine = engine
        self.max_version = max_version
        self.accounts = accounts
        self.account = accounts[0]
        self.sessions: set[Session] = set()
        self.by_client: dict[int, Session] = {}
        self.fanout = Fanout(self, stamp_ticks=stamp_ticks)
        engine.listener = self.fanout
        self.handlers = handlers
        self.connected_to_ib = True  # False after `ctl connectivity lost`
        self.refuse_until = 0.0  # time.monotonic() before which API logins are refused
        self.no_market_data: set[str] = set()  # symbols ("*" = all) without a live data permission
        self._con_ids: dict[int, str] = {}

    # ------------------------------------------------------------------ sessions
    def server_time(self) -> datetime:
        """Simulated now: what the handshake reply and reqCurrentTime report."""
        return self.engine.now()

    def add_session(self, session: Session) -> None:
        self.sessions.add(session)

    def refusing(self) -> bool:
        return time.monotonic() < self.refuse_until

    def remove_session(self, session: Session) -> None:
        self.sessions.discard(session)
        if session.client_id is not None and self.by_client.get(session.client_id) is session:
            del self.by_client[session.client_id]
            log.info("client %d disconnected", session.client_id)
        self.fanout.drop_session(session)

    def client_ids(self) -> list[int]:
        return sorted(self.by_client)

    def start_api(self, session: Session, client_id: int) -> None:
        other = self.by_client.get(client_id)
        if other is not None and not other.closed:
            log.warning("refusing a second connection with client id %d (%s)", client_id,
                        session.peer)
            session.error(-1, 326, MSG_CLIENT_ID_IN_USE)
            session.close("client id in use")
            return
        session.client_id = client_id
        self.by_client[client_id] = session
        log.info("client %d connected from %s at server version %d", client_id, session.peer,
                 session.sv)
        session.send(msg.next_valid_id(self.engine.next_order_id()))
        session.send(msg.managed_accounts(self.accounts))
        for code, text in FARM_MESSAGES:
            session.error(-1, code, text)
        if not self.connected_to_ib:
            session.error(-1, 1100, MSG_CONNECTIVITY_LOST)

    # ------------------------------------------------------------------ requests
    def dispatch(self, session: Session, fields: list[str]) -> None:
        """Decode one request and run its handler. ProtocolError propagates (the session
        closes); a bug in a handler is logged and answered with error 321, the session lives."""
        request: Request | None = decode_request(fields, session.sv)
        if request is None:
            log.warning("client %s sent unknown message id %r (%d fields); ignored",
                        session.client_id, fields[0], len(fields))
            return
        handler = self.handlers.get(request.msg_id)
        if handler is None:
            log.warning("no handler for message id %d; ignored", request.msg_id)
            return
        try:
            handler(self, session, request)
        except ProtocolError:
            raise
        except Exception as exc:  # an ibsim bug must not take the client down
            log.exception("handling message %d from client %s failed", request.msg_id,
                          session.client_id)
            req_id = getattr(request, "req_id", None)
            if not isinstance(req_id, int):
                req_id = int(getattr(request, "order_id", -1))
            session.error(req_id, 321, f"Error validating request: ibsim failed: {exc}")

    # ------------------------------------------------------------------ contracts
    def resolve(self, ref: ContractRef) -> ContractInfo | None:
        """The stock a request means (by symbol, else by conId); None if unknown."""
        if ref.sec_type not in ("", "STK"):
            return None
        if ref.currency not in ("", "USD"):
            return None
        symbol = ref.symbol.strip().upper()
        if not symbol and ref.con_id:
            symbol = self._symbol_for_con_id(ref.con_id) or ""
        if not symbol:
            return None
        info = self.engine.contract(symbol)
        if info is None or (ref.con_id and ref.con_id != info.con_id):
            return None
        self._con_ids[info.con_id] = info.symbol
        return info

    def _symbol_for_con_id(self, con_id: int) -> str | None:
        if con_id not in self._con_ids:
            for symbol in self.engine.symbols():
                info = self.engine.contract(symbol)
                if info is not None:
                    self._con_ids[info.con_id] = info.symbol
        return self._con_ids.get(con_id)

    def contract_or_stub(self, symbol: str) -> ContractInfo:
        """For reporting orders/positions on a symbol the engine no longer lists."""
        return self.engine.contract(symbol) or ContractInfo(symbol=symbol, con_id=0)

    # ------------------------------------------------------------------ faults
    def set_connectivity(self, up: bool, data_lost: bool = False) -> None:
        if up == self.connected_to_ib:
            return
        self.connected_to_ib = up
        for s in list(self.by_client.values()):
            if not up:
                s.error(-1, 1100, MSG_CONNECTIVITY_LOST)
            elif data_lost:
                s.error(-1, 1101, MSG_RESTORED_LOST)
            else:
                s.error(-1, 1102, MSG_RESTORED_KEPT)
        if up:
            self.fanout.refresh_all()

    def live_data_permitted(self, symbol: str) -> bool:
        blocked = self.no_market_data
        return not blocked or ("*" not in blocked and symbol not in blocked)

    def drop(self, client_id: int | None = None) -> list[int]:
        """Abort client sockets (all, or one client id); returns the ids dropped."""
        dropped: list[int] = []
        for s in list(self.sessions):
            if client_id is not None and s.client_id != client_id:
                continue
            if s.client_id is not None:
                dropped.append(s.client_id)
            s.abort()
            self.remove_session(s)
        return sorted(dropped)

    def refuse(self, seconds: float) -> list[int]:
        """Gateway restart: drop everyone and refuse API logins for `seconds`."""
        self.refuse_until = time.monotonic() + max(seconds, 0.0)
        return self.drop(None)
