"""The simulated broker account: cash, positions with IB-style average cost, realized P&L,
IBKR fixed-rate commissions and the account values IB reports.

Why separate from matching: these are plain bookkeeping rules that tests can check with
numbers alone, without orders or quotes.
"""

from __future__ import annotations

from dataclasses import dataclass

from ibsim.model import PositionRow

STARTING_CASH = 100_000.0
PER_SHARE = 0.005
MIN_PER_ORDER = 1.00
MAX_FRACTION_OF_VALUE = 0.01
MARGIN_FRACTION = 0.25  # day-trading margin: 4x buying power
DAY_TRADING_LEVERAGE = 4.0


def fixed_commission(shares: float, value: float) -> float:
    """IBKR Fixed for US stocks, per order: $0.005/share, at least $1.00, at most 1% of value."""
    if shares <= 0:
        return 0.0
    return round(min(max(PER_SHARE * shares, MIN_PER_ORDER), MAX_FRACTION_OF_VALUE * value), 4)


@dataclass(slots=True)
class Position:
    symbol: str
    qty: float = 0.0
    avg_cost: float = 0.0  # per share, commissions included (as IB reports it)
    realized: float = 0.0
    mark: float = 0.0  # last market price seen


class Account:
    """Cash and positions; `apply_fill` is the only way they change (besides hand-held adds)."""

    def __init__(self, cash: float = STARTING_CASH) -> None:
        self.cash = float(cash)
        self.positions: dict[str, Position] = {}
        self.realized_total = 0.0
        self.commissions_total = 0.0

    def position(self, symbol: str) -> Position:
        pos = self.positions.get(symbol)
        if pos is None:
            pos = self.positions[symbol] = Position(symbol)
        return pos

    def held(self, symbol: str) -> float:
        pos = self.positions.get(symbol)
        return pos.qty if pos else 0.0

    def apply_fill(self, symbol: str, action: str, shares: float, price: float,
                   commission: float) -> float:
        """Book a fill; return the realized P&L it produced (net of its commission when it
        closes shares, 0.0 when it only opens)."""
        pos = self.position(symbol)
        signed = shares if action == "BUY" else -shares
        value = shares * price
        self.cash += -value if action == "BUY" else value
        self.cash -= commission
        self.commissions_total += commission
        pos.mark = price
        realized = 0.0
        if pos.qty == 0 or (pos.qty > 0) == (signed > 0):
            # opening or adding: the commission goes into the average cost
            new_qty = pos.qty + signed
            gross = abs(pos.qty) * pos.avg_cost + (value + commission if signed > 0 else value - commission)
            pos.avg_cost = gross / abs(new_qty)
            pos.qty = new_qty
        else:
            closing = min(abs(signed), abs(pos.qty))
            opening = abs(signed) - closing
            close_comm = commission * closing / shares
            direction = 1.0 if pos.qty > 0 else -1.0
            realized = direction * closing * (price - pos.avg_cost) - close_comm
            pos.qty += signed
            if abs(pos.qty) < 1e-9:
                pos.qty = 0.0
                pos.avg_cost = 0.0
            if opening > 0:  # flipped through zero
                open_comm = commission - close_comm
                pos.avg_cost = (opening * price + (open_comm if signed > 0 else -open_comm)) / opening
        pos.realized += realized
        self.realized_total += realized
        return realized

    def add_hand_held(self, symbol: str, qty: float, avg_cost: float) -> None:
        """A position bought outside the suite: it joins the book at its average cost
        (cash pays for it, as if it had been bought earlier in this account)."""
        pos = self.position(symbol)
        total = pos.qty + qty
        if abs(total) < 1e-9:
            pos.qty, pos.avg_cost = 0.0, 0.0
        else:
            pos.avg_cost = (pos.qty * pos.avg_cost + qty * avg_cost) / total
            pos.qty = total
        self.cash -= qty * avg_cost
        if pos.mark == 0.0:
            pos.mark = avg_cost

    def mark(self, symbol: str, price: float) -> None:
        pos = self.positions.get(symbol)
        if pos is not None and price > 0:
            pos.mark = price

    def row(self, symbol: str) -> PositionRow:
        pos = self.position(symbol)
        unreal = (pos.mark - pos.avg_cost) * pos.qty if pos.qty else 0.0
        return PositionRow(symbol=symbol, quantity=pos.qty, avg_cost=round(pos.avg_cost, 6),
                           market_price=pos.mark, unrealized_pnl=round(unreal, 2),
                           realized_pnl=round(pos.realized, 2))

    def rows(self) -> list[PositionRow]:
        return [self.row(s) for s, p in sorted(self.positions.items()) if p.qty != 0]

    def values(self) -> dict[str, tuple[str, str]]:
        """Account values keyed like IB's accountSummary/updateAccountValue tags."""
        long_value = sum(p.qty * p.mark for p in self.positions.values())
        gross = sum(abs(p.qty * p.mark) for p in self.positions.values())
        unreal = sum((p.mark - p.avg_cost) * p.qty for p in self.positions.values() if p.qty)
        net_liq = self.cash + long_value
        margin = MARGIN_FRACTION * gross
        available = net_liq - margin
        money = {
            "NetLiquidation": net_liq,
            "TotalCashValue": self.cash,
            "SettledCash": self.cash,
            "GrossPositionValue": gross,
            "EquityWithLoanValue": net_liq,
            "InitMarginReq": margin,
            "MaintMarginReq": margin,
            "AvailableFunds": available,
            "ExcessLiquidity": available,
            "BuyingPower": max(available, 0.0) * DAY_TRADING_LEVERAGE,
            "UnrealizedPnL": unreal,
            "RealizedPnL": self.realized_total,
        }
        out = {k: (f"{v:.2f}", "USD") for k, v in money.items()}
        out["AccountType"] = ("INDIVIDUAL", "")
        out["Currency"] = ("USD", "USD")
        return out
