"""Broker evidence for reconciliation: positions, executions, account, time, scanner.

The processes reconcile their database against what the broker says (daytrading/exits/reconcile_plan.py
decides; this module only fetches and translates). Positions and account values are kept
live by ib_insync after connecting, so reading them needs no request.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterable
from datetime import UTC, datetime

from ib_insync import AccountValue, PortfolioItem, Position, ScanDataList, ScannerSubscription

from daytrading.broker.api import AccountSnapshot, BrokerPosition, FillReport
from daytrading.broker.codes import BrokerConnectError
from daytrading.broker.convert import commission_known, fill_report
from daytrading.broker.session import Session

_ACCOUNT_TAGS = {
    "NetLiquidation": "net_liquidation",
    "AvailableFunds": "available_funds",
    "BuyingPower": "buying_power",
    "TotalCashValue": "total_cash",
    "RealizedPnL": "realized_pnl",
    "UnrealizedPnL": "unrealized_pnl",
}


def _number(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return float(value)


def positions_by_symbol(
    positions: Iterable[Position], portfolio: Iterable[PortfolioItem], account: str = ""
) -> dict[str, BrokerPosition]:
    """Stock positions per symbol (other security types are not the suite's business)."""
    marks = {
        p.contract.conId: p for p in portfolio if not account or p.account == account
    }
    out: dict[str, BrokerPosition] = {}
    for pos in positions:
        if account and pos.account != account:
            continue
        if pos.contract.secType != "STK" or not pos.position:
            continue
        mark = marks.get(pos.contract.conId)
        out[pos.contract.symbol] = BrokerPosition(
            symbol=pos.contract.symbol,
            quantity=float(pos.position),
            avg_cost=float(pos.avgCost),
            market_price=_number(mark.marketPrice) if mark else None,
            unrealized_pnl=_number(mark.unrealizedPNL) if mark else None,
        )
    return out


def account_snapshot(values: Iterable[AccountValue], account: str) -> AccountSnapshot:
    """Net liquidation etc. from account values (USD or BASE currency; model code empty)."""
    snap = AccountSnapshot(account=account)
    for value in values:
        if account and value.account != account:
            continue
        if value.modelCode:
            continue
        field = _ACCOUNT_TAGS.get(value.tag)
        if field and value.currency in ("USD", "BASE", ""):
            try:
                number = float(value.value)
            except ValueError:
                continue
            if getattr(snap, field) is None or value.currency == "USD":
                setattr(snap, field, number)
        elif not value.currency or value.currency in ("USD", "BASE"):
            snap.extra.setdefault(value.tag, value.value)
    return snap


class BrokerQueries:
    def __init__(self, session: Session) -> None:
        self.s = session

    def positions(self) -> dict[str, BrokerPosition]:
        ib = self.s.ib
        return positions_by_symbol(ib.positions(), ib.portfolio(), self.s.account)

    async def account(self) -> AccountSnapshot:
        ib = self.s.ib
        values = ib.accountValues(self.s.account)
        if not values:
            self.s.require_ready("read account values")
            try:
                await asyncio.wait_for(
                    ib.reqAccountUpdatesAsync(self.s.account), self.s.request_timeout
                )
            except (TimeoutError, ConnectionError) as exc:
                raise BrokerConnectError(
                    f"account values for {self.s.account} did not arrive ({exc!r}); retry"
                ) from exc
            values = ib.accountValues(self.s.account)
        return account_snapshot(values, self.s.account)

    async def server_time(self) -> datetime:
        self.s.require_ready("ask the server time")
        try:
            when = await asyncio.wait_for(
                self.s.ib.reqCurrentTimeAsync(), self.s.request_timeout
            )
        except (TimeoutError, ConnectionError) as exc:
            raise BrokerConnectError(f"reqCurrentTime got no answer ({exc!r}); retry") from exc
        return when if when.tzinfo else when.replace(tzinfo=UTC)

    async def executions_since(
        self, since: datetime | None = None, ref_prefix: str = ""
    ) -> list[FillReport]:
        """Executions the broker reports for today (reqExecutions), newest last.

        Filtered here rather than with IB's ExecutionFilter.time, whose time zone handling
        differs between TWS versions. Commission is included when its report has arrived
        (we wait up to one second for missing ones).
        """
        self.s.require_ready("request executions")
        ib = self.s.ib
        try:
            fills = await asyncio.wait_for(ib.reqExecutionsAsync(), self.s.request_timeout)
        except (TimeoutError, ConnectionError) as exc:
            raise BrokerConnectError(f"reqExecutions got no answer ({exc!r}); retry") from exc
        if since is not None and since.tzinfo is None:
            since = since.replace(tzinfo=UTC)
        live = {f.execution.execId: f for f in ib.fills()}  # these get the commission reports
        chosen = []
        for fill in fills:
            fill = live.get(fill.execution.execId, fill)
            report = fill_report(fill)
            if not report.order_ref.startswith(ref_prefix):
                continue
            if since is not None and report.time < since:
                continue
            chosen.append(fill)
        if any(not commission_known(f) for f in chosen):
            await self.s.wait_until(lambda: all(commission_known(f) for f in chosen), 1.0)
        reports = [fill_report(f) for f in chosen]
        reports.sort(key=lambda r: r.time)
        return reports

    async def scanner(self, scan_code: str, rows: int = 20) -> list[str]:
        """Symbols of an IB market scanner (US major stocks), best first."""
        self.s.require_ready("run the market scanner")
        ib = self.s.ib
        sub = ScannerSubscription(
            instrument="STK", locationCode="STK.US.MAJOR", scanCode=scan_code,
            numberOfRows=int(rows),
        )
        try:
            data = await asyncio.wait_for(ib.reqScannerDataAsync(sub), self.s.request_timeout)
        except (TimeoutError, ConnectionError) as exc:
            for live in ib.realtimeBars():  # also holds live scanner subscriptions
                if isinstance(live, ScanDataList) and live.subscription is sub:
                    ib.cancelScannerSubscription(live)
            raise BrokerConnectError(
                f"scanner {scan_code} got no answer within {self.s.request_timeout:.0f}s "
                f"({exc!r}); retry"
            ) from exc
        symbols: list[str] = []
        for item in sorted(data, key=lambda d: d.rank):
            symbol = item.contractDetails.contract.symbol if item.contractDetails.contract else ""
            if symbol and symbol not in symbols:
                symbols.append(symbol)
        return symbols[: int(rows)]
