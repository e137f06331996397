"""daytrading/operations/liquidation.py: the procedure over an in-memory broker, for the
cases ibsim cannot produce (the scripts' end-to-end runs against ibsim are in tests/scripts)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from daytrading.broker.api import BrokerPosition, OrderUpdate
from daytrading.operations.liquidation import Liquidator
from tests.fakes.memory_broker import MemoryBroker
from tests.scripts.simday import DAY, database, ny, resting_sell


def test_a_symbol_whose_order_outlives_the_cancel_is_not_sold(tmp_path: Path) -> None:
    """A resting sell that may still fill must never race a second sell (the BYND lesson).
    ibsim's global cancel is immediate, so this uses the in-memory broker with one order the
    cancel does not reach."""
    class StubbornBroker(MemoryBroker):
        async def global_cancel(self) -> None:
            for order_id, order in list(self.orders.items()):
                if order.symbol != "AAPL":
                    await self.cancel_and_confirm(order_id)

        async def all_open_orders(self, ref_prefix: str = "") -> list[OrderUpdate]:
            return self.open_orders(ref_prefix)

    broker = StubbornBroker(client_id=90)
    broker.held.update({"AAPL": BrokerPosition("AAPL", 10, 100.0),
                        "MSFT": BrokerPosition("MSFT", 5, 50.0)})
    broker.behaviour["AAPL"] = "rest"
    broker.fill_price["MSFT"] = 49.0
    db = database(tmp_path / "t.db", ny(DAY, 11, 0))
    try:
        db.add_active_position("AAPL", 10, 100.0, entry_timestamp=ny(DAY, 10, 0))
        db.add_active_position("MSFT", 5, 50.0, entry_timestamp=ny(DAY, 10, 0))

        async def run():
            await broker.place(resting_sell("AAPL", 10, "em:tp:1"))
            liquidator = Liquidator(broker, db, db.clock, scope="managed", cancel_timeout=0.2,
                                    fill_timeout=2.0, poll_seconds=0.02)
            return await liquidator.execute()

        result = asyncio.run(asyncio.wait_for(run(), 20))
        outcomes = {o.symbol: o for o in result.outcomes}
        assert not result.ok
        assert outcomes["AAPL"].status == "NOT_SENT" and "double sell" in outcomes["AAPL"].message
        assert outcomes["MSFT"].status == "FILLED" and outcomes["MSFT"].avg_price == 49.0
        assert [r.order_ref for r in broker.placed] == ["em:tp:1", "op:liq:2"]
        assert [o.order_ref for o in result.orders_still_working] == ["em:tp:1"]
        (row,) = db.get_active_positions()
        assert (row["symbol"], row["status"]) == ("AAPL", "NEEDS_ATTENTION")
        (closed,) = db.get_closed_positions(DAY)
        assert (closed["symbol"], closed["exit_reason"]) == ("MSFT", "LIQUIDATED")
        assert closed["pnl_usd"] == (49.0 - 50.0) * 5 - 1.0
        assert db.get_controls()["halted"] is True
    finally:
        db.close()
