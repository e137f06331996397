"""IBClient: the suite's only connection to IB Gateway/TWS (implements api.BrokerClient).

It composes small parts that share one Session: Connector (connect, 326, mode checks),
MarketData (quotes, bars, history), OrderManager (place/cancel with confirmation),
FillTracker (on_fill exactly once) and BrokerQueries (positions, executions, account ...).
This module wires ib_insync's events to them and owns the connection state machine:

    DISCONNECTED -> CONNECTING -> CONNECTED
    socket dropped:  LOST -> CONNECTING (backoff with jitter) -> RESYNCING -> CONNECTED
    IB error 1100:   LOST (socket kept; the gateway restores it) -- 1101/1102 -> RESYNCING

Why 1100 keeps the socket: TWS is still there and will say 1101/1102 when IB's servers are
back; closing and reopening our socket during the outage would only lose its state. A
resync re-reads positions, open orders and executions (a fill while away is reported via
on_fill after reconnecting, once, deduped by exec_id) and restores every subscription.

All network methods are async and must run on the loop that connected.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable, Sequence
from datetime import datetime

from daytrading.broker.api import (
    AccountSnapshot,
    BrokerPosition,
    CancelOutcome,
    ConnectionState,
    FillReport,
    OrderRequest,
    OrderUpdate,
)
from daytrading.broker.codes import BrokerConnectError, ClientIdInUseError
from daytrading.broker.connection import Connector
from daytrading.broker.fills import FillTracker
from daytrading.broker.market_data import MarketData
from daytrading.broker.orders import OrderManager
from daytrading.broker.pacing import HistoricalPacer
from daytrading.broker.reconcile import BrokerQueries
from daytrading.broker.session import Session
from daytrading.config.settings import BrokerSettings
from daytrading.core.backoff import BackoffPolicy
from daytrading.core.clock import Clock
from daytrading.core.errors import ConfigError
from daytrading.core.types import Bar, Quote

_RESYNC_TIMEOUT_FLOOR = 5.0


class IBClient:
    """The broker adapter. See the module docstring and api.BrokerClient."""

    def __init__(
        self,
        settings: BrokerSettings,
        client_id: int,
        *,
        logger: logging.Logger | None = None,
        clock: Clock | None = None,
        reconnect_initial_backoff: float = 0.5,
        client_id_retry_delays: Sequence[float] = (1.0, 2.0, 4.0, 8.0),
        commission_wait: float = 2.0,
        ack_timeout: float = 10.0,
        pacer: HistoricalPacer | None = None,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.session = Session(settings, client_id, logger=logger, clock=clock)
        self.settings = settings
        self.client_id = int(client_id)
        self.log = self.session.log
        self.on_state: list[Callable[[ConnectionState], None]] = []
        self.on_quote: list[Callable[[Quote], None]] = []
        self.on_bar: list[Callable[[str, Bar], None]] = []
        self.on_order: list[Callable[[OrderUpdate], None]] = []
        self.on_fill: list[Callable[[FillReport], None]] = []
        s = self.session
        self.connector = Connector(s, client_id_retry_delays=client_id_retry_delays)
        self.market = MarketData(
            s, lambda q: s.emit(self.on_quote, q), lambda sym, b: s.emit(self.on_bar, sym, b),
            pacer=pacer,
        )
        self.orders = OrderManager(s, lambda u: s.emit(self.on_order, u), ack_timeout=ack_timeout)
        self.fills = FillTracker(s, lambda f: s.emit(self.on_fill, f),
                                 commission_wait=commission_wait)
        self.queries = BrokerQueries(s)
        self.backoff = BackoffPolicy(
            initial_seconds=max(0.05, reconnect_initial_backoff),
            max_seconds=max(reconnect_initial_backoff, settings.reconnect_max_backoff_seconds),
            min_seconds=min(0.1, reconnect_initial_backoff),
        )
        self._rng = rng
        self._closing = False
        self._link_lost = False  # 1100 seen; waiting for 1101/1102
        self._reconnect_task: asyncio.Task[None] | None = None
        self._resync_task: asyncio.Task[None] | None = None
        self.fatal_error: Exception | None = None  # why reconnecting gave up (config problem)
        self.reconnects = 0
        self._wire(s)

    # --- state ---------------------------------------------------------------------------

    @property
    def state(self) -> ConnectionState:
        return self.session.state

    @property
    def account_id(self) -> str:
        return self.session.account

    @property
    def market_data_type_requests(self) -> list[int]:
        """Every reqMarketDataType sent, in order (one per connection or resync)."""
        return self.market.market_data_type_requests

    def _set_state(self, state: ConnectionState) -> None:
        if state is self.session.state:
            return
        self.log.info("broker connection %s -> %s (client %s)",
                      self.session.state.value, state.value, self.client_id)
        self.session.state = state
        self.session.notify()
        self.session.emit(self.on_state, state)

    def _wire(self, s: Session) -> None:
        ib = s.ib
        ib.updateEvent += self._on_update
        ib.disconnectedEvent += self._on_disconnected
        ib.errorEvent += self._on_error
        ib.errorEvent += self.orders.on_error
        ib.orderStatusEvent += self.orders.on_status
        ib.pendingTickersEvent += self.market.on_tickers
        ib.barUpdateEvent += self.market.on_bar_update

    def _on_update(self) -> None:
        self.fills.scan()
        self.session.notify()

    # --- connect / disconnect ------------------------------------------------------------

    async def connect(self) -> None:
        """Connect, check the account against the mode, apply the market data type.

        Raises BrokerConnectError (transient: retry), ClientIdInUseError (326 persisted),
        AccountModeError / ConfigError (refuse to start).
        """
        if self._reconnect_task is not None and not self._reconnect_task.done():
            # already reconnecting by itself: wait for it instead of opening a second socket
            timeout = self.settings.connect_timeout_seconds + self.backoff.max_seconds
            if not await self.session.wait_until(
                lambda: self.state is ConnectionState.CONNECTED, timeout
            ):
                raise BrokerConnectError(
                    f"still reconnecting to {self.settings.host}:{self.settings.port} "
                    f"(state {self.state.value}); retry"
                )
            return
        if self.session.ib.isConnected():
            return  # connected; the state machine tracks LOST (1100) / RESYNCING itself
        self._closing = False
        self._link_lost = False
        self.fatal_error = None
        self._set_state(ConnectionState.CONNECTING)
        try:
            await self.connector.open()
        except BaseException:
            self._set_state(ConnectionState.DISCONNECTED)
            raise
        if not self.session.ib.isConnected():
            self._set_state(ConnectionState.DISCONNECTED)
            raise BrokerConnectError(
                f"the connection to {self.settings.host}:{self.settings.port} dropped right "
                "after connecting; retry"
            )
        self.session.generation += 1
        self.log.info("connected to %s:%s as client %s, account %s (%s mode)",
                      self.settings.host, self.settings.port, self.client_id,
                      self.session.account, self.settings.mode)
        if not self.fills.armed:
            self.fills.baseline()
        self.market.resubscribe(in_place=False)
        self._set_state(ConnectionState.LOST if self._link_lost else ConnectionState.CONNECTED)

    async def disconnect(self) -> None:
        """Close the connection for good (no reconnect); held fills are reported first."""
        self._closing = True
        for task in (self._reconnect_task, self._resync_task):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
        self.fills.flush()
        if self.session.ib.isConnected() or self.session.ib.client.isConnected():
            self.session.ib.disconnect()
        self._set_state(ConnectionState.DISCONNECTED)

    def _on_disconnected(self) -> None:
        self.fills.reset_cursor()  # ib_insync forgets its fills on every close
        if self._closing or self.state in (ConnectionState.CONNECTING,
                                           ConnectionState.DISCONNECTED):
            return  # connect() handles its own failures
        self.log.warning("connection to %s:%s lost (client %s); reconnecting",
                         self.settings.host, self.settings.port, self.client_id)
        self._set_state(ConnectionState.LOST)
        if self._reconnect_task is None or self._reconnect_task.done():
            self._reconnect_task = asyncio.ensure_future(self._reconnect_loop())

    def closing(self) -> bool:
        """True once disconnect() was asked for: no more reconnecting."""
        return self._closing

    async def _reconnect_loop(self) -> None:
        """Reconnect with exponential backoff and jitter until it works (or a config error)."""
        attempt = 0
        while not self._closing:
            delay = self.backoff.delay(attempt, self._rng)
            self.log.info("reconnect attempt %d in %.2fs", attempt + 1, delay)
            await asyncio.sleep(delay)
            if self.closing():  # disconnect() may have run while we slept
                return
            self._set_state(ConnectionState.CONNECTING)
            self._link_lost = False
            try:
                await self.connector.open(retry_client_id=False)
            except ConfigError as exc:  # account/mode changed under us: never trade on
                self.fatal_error = exc
                self.log.critical("reconnect refused, staying disconnected: %s", exc)
                self._set_state(ConnectionState.DISCONNECTED)
                return
            except (BrokerConnectError, ClientIdInUseError, OSError, TimeoutError) as exc:
                attempt += 1
                self.log.warning("reconnect attempt %d failed: %s", attempt, exc)
                self._set_state(ConnectionState.LOST)
                continue
            except Exception:  # a bug must not end reconnecting for good
                attempt += 1
                self.log.exception("reconnect attempt %d failed unexpectedly", attempt)
                self._set_state(ConnectionState.LOST)
                continue
            self.session.generation += 1
            self.reconnects += 1
            try:
                await self._resync(fresh=True, resubscribe=True)
            except (ConnectionError, TimeoutError, BrokerConnectError) as exc:
                self.log.warning("resync after reconnect failed: %s", exc)
            if self.session.ib.isConnected():
                # socket back; if IB's side is still down (1100) 1101/1102 finishes the job
                self._set_state(
                    ConnectionState.LOST if self._link_lost else ConnectionState.CONNECTED
                )
                return
            attempt += 1
            self._set_state(ConnectionState.LOST)

    async def _resync(self, *, fresh: bool, resubscribe: bool) -> None:
        """Re-read broker state and restore subscriptions (state RESYNCING meanwhile).

        fresh: a new socket, whose connect already fetched positions, open orders and
        executions; otherwise (1101/1102) they are requested again here.
        """
        self._set_state(ConnectionState.RESYNCING)
        ib = self.session.ib
        if not fresh:
            timeout = max(_RESYNC_TIMEOUT_FLOOR, self.session.request_timeout)
            for name, request in (("positions", ib.reqPositionsAsync),
                                  ("open orders", ib.reqOpenOrdersAsync),
                                  ("executions", ib.reqExecutionsAsync)):
                try:
                    await asyncio.wait_for(request(), timeout)
                except TimeoutError:
                    self.log.warning("resync: %s request timed out", name)
        if resubscribe:
            self.market.resubscribe(in_place=not fresh)
        else:
            self.market.apply_market_data_type()
        self.fills.scan()
        self.orders.resync()
        self.log.info("resynchronised: %d positions, %d open orders, %d executions",
                      len(ib.positions()), len(ib.openTrades()), len(ib.fills()))

    def _on_error(self, req_id: int, code: int, message: str, contract: object) -> None:
        """Connectivity codes drive the state machine (1100 lost, 1101/1102 restored)."""
        if self._closing or code not in (1100, 1101, 1102):
            return
        if code == 1100:
            self._link_lost = True
            self.log.warning("IB connectivity lost (1100): %s", message)
            if self.state in (ConnectionState.CONNECTED, ConnectionState.RESYNCING):
                self._set_state(ConnectionState.LOST)
            return
        self.log.info("IB connectivity restored (%s): %s", code, message)
        self._link_lost = False
        reconnecting = self._reconnect_task is not None and not self._reconnect_task.done()
        live = self.state in (ConnectionState.LOST, ConnectionState.CONNECTED)
        if live and self.session.ib.isConnected() and not reconnecting and (
            self._resync_task is None or self._resync_task.done()
        ):
            self._resync_task = asyncio.ensure_future(self._restore(data_lost=code == 1101))

    async def _restore(self, *, data_lost: bool) -> None:
        try:
            await self._resync(fresh=False, resubscribe=data_lost)
        except (ConnectionError, BrokerConnectError) as exc:
            self.log.warning("resync after connectivity restore failed: %s", exc)
            return  # the socket dropped: the reconnect loop takes over
        if self.session.ib.isConnected() and not self._link_lost:
            self._set_state(ConnectionState.CONNECTED)

    # --- market data ---------------------------------------------------------------------

    async def qualify(self, symbol: str) -> bool:
        return await self.market.qualify(symbol)

    async def subscribe_quotes(self, symbol: str) -> None:
        await self.market.subscribe_quotes(symbol)

    async def unsubscribe_quotes(self, symbol: str) -> None:
        await self.market.unsubscribe_quotes(symbol)

    async def subscribe_bars(self, symbol: str, bar_seconds: int = 30) -> None:
        await self.market.subscribe_bars(symbol, bar_seconds)

    async def unsubscribe_bars(self, symbol: str) -> None:
        await self.market.unsubscribe_bars(symbol)

    async def historical_bars(
        self, symbol: str, duration: str, bar_size: str, use_rth: bool = False
    ) -> list[Bar]:
        return await self.market.historical_bars(symbol, duration, bar_size, use_rth)

    def last_quote(self, symbol: str) -> Quote | None:
        return self.market.last_quote(symbol)

    # --- orders ----------------------------------------------------------------------------

    async def place(self, request: OrderRequest) -> OrderUpdate:
        return await self.orders.place(request)

    def reprice(self, order_id: int, limit_price: float) -> OrderUpdate:
        """Move a working limit order's price now (sent before returning; see OrderManager)."""
        return self.orders.reprice(order_id, limit_price)

    async def cancel_and_confirm(self, order_id: int, timeout: float = 5.0) -> CancelOutcome:
        return await self.orders.cancel_and_confirm(order_id, timeout)

    async def global_cancel(self) -> None:
        await self.orders.global_cancel()

    def open_orders(self, ref_prefix: str = "") -> list[OrderUpdate]:
        return self.orders.open_orders(ref_prefix)

    async def all_open_orders(self, ref_prefix: str = "") -> list[OrderUpdate]:
        return await self.orders.all_open_orders(ref_prefix)

    # --- reconciliation ----------------------------------------------------------------------

    def positions(self) -> dict[str, BrokerPosition]:
        return self.queries.positions()

    async def executions_since(
        self, since: datetime | None = None, ref_prefix: str = ""
    ) -> list[FillReport]:
        return await self.queries.executions_since(since, ref_prefix)

    async def server_time(self) -> datetime:
        return await self.queries.server_time()

    async def account(self) -> AccountSnapshot:
        return await self.queries.account()

    async def scanner(self, scan_code: str, rows: int = 20) -> list[str]:
        return await self.queries.scanner(scan_code, rows)
