"""State shared by the adapter's parts: the ib_insync IB object, settings, hooks, waiting.

IBClient owns one Session and hands it to its parts (connection, market data, orders,
fills, reconciliation), so each part stays small and none reaches into another.
Everything runs on one asyncio loop; nothing here locks.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from typing import Any

from ib_insync import IB, Contract, Stock

from daytrading.broker.api import ConnectionState
from daytrading.broker.codes import BrokerConnectError
from daytrading.config.settings import BrokerSettings
from daytrading.core.clock import Clock, WallClock


class Session:
    """The shared context. `state` is written only by IBClient._set_state."""

    def __init__(
        self,
        settings: BrokerSettings,
        client_id: int,
        *,
        logger: logging.Logger | None = None,
        clock: Clock | None = None,
        ib: IB | None = None,
    ) -> None:
        self.settings = settings
        self.client_id = int(client_id)
        self.log = logger or logging.getLogger(f"daytrading.broker.{client_id}")
        self.clock: Clock = clock or WallClock()
        self.ib = ib or IB()
        self.state = ConnectionState.DISCONNECTED
        self.account = ""  # the account checked at connect
        self.contracts: dict[str, Contract] = {}  # qualification cache, survives reconnects
        self.generation = 0  # +1 per successful socket connect (subscriptions remember theirs)
        self._waiters: list[asyncio.Future[None]] = []

    # --- callbacks -----------------------------------------------------------------------

    def emit(self, hooks: Iterable[Callable[..., Any]], *args: Any) -> None:
        """Call each hook; a failing hook is logged and never breaks the adapter."""
        for hook in list(hooks):
            try:
                hook(*args)
            except Exception:
                self.log.exception("broker callback %r failed", hook)

    # --- waiting for broker evidence -----------------------------------------------------

    def notify(self) -> None:
        """Something changed (a packet was handled, the state moved): re-check waiters."""
        waiters, self._waiters = self._waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)

    async def wait_until(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Wait until predicate() is true, re-checking after every update; False on timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(0.0, timeout)
        while not predicate():
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            fut: asyncio.Future[None] = loop.create_future()
            self._waiters.append(fut)
            try:
                await asyncio.wait_for(fut, remaining)
            except TimeoutError:
                pass
        return True

    # --- guards --------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """Socket up and the gateway connected to IB (not LOST, not mid-connect)."""
        return self.ib.isConnected() and self.state in (
            ConnectionState.CONNECTED,
            ConnectionState.RESYNCING,
        )

    def require_ready(self, what: str) -> None:
        """Raise BrokerConnectError (transient) when the broker cannot take requests now."""
        if not self.ready:
            raise BrokerConnectError(
                f"cannot {what}: the broker connection is {self.state.value} "
                f"(client {self.client_id}, {self.settings.host}:{self.settings.port}). "
                "It reconnects by itself; retry after the state is CONNECTED."
            )

    @property
    def request_timeout(self) -> float:
        return max(1.0, float(self.settings.connect_timeout_seconds))

    # --- contracts -------------------------------------------------------------------------

    def known_contract(self, symbol: str) -> Contract | None:
        """The stock contract the gateway already described for a position or an open
        order of this connection, as a SMART-routed contract with its conId.

        Why: every reqContractDetails counts against the ~45 messages a second the API
        allows, so qualifying each held symbol again after a restart took seconds with
        dozens of positions; the conId the gateway sent identifies the stock exactly.
        """
        described = [p.contract for p in self.ib.positions()]
        described += [t.contract for t in self.ib.openTrades()]
        for c in described:
            if (c.symbol == symbol and c.secType == "STK" and c.conId
                    and (c.currency or "USD") == "USD"):
                stock = Stock(symbol, "SMART", "USD", conId=c.conId,
                              primaryExchange=c.primaryExchange or "",
                              localSymbol=c.localSymbol or "", tradingClass=c.tradingClass or "")
                return stock
        return None

    async def contract(self, symbol: str) -> Contract | None:
        """The qualified stock contract (SMART/USD), cached; None if IB does not know it."""
        key = symbol.strip().upper()
        cached = self.contracts.get(key)
        if cached is not None:
            return cached
        known = self.known_contract(key)
        if known is not None:
            self.contracts[key] = known
            return known
        self.require_ready(f"qualify {key}")
        stock = Stock(key, "SMART", "USD")
        try:
            found = await asyncio.wait_for(
                self.ib.qualifyContractsAsync(stock), self.request_timeout
            )
        except TimeoutError as exc:
            raise BrokerConnectError(
                f"qualifying {key} got no answer within {self.request_timeout:.0f}s; retry"
            ) from exc
        except ConnectionError as exc:
            raise BrokerConnectError(f"connection dropped while qualifying {key}") from exc
        if not found or not stock.conId:
            return None
        self.contracts[key] = stock
        return stock
