"""FillTracker: every execution of this client once, held briefly for its commission."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from types import SimpleNamespace

from ib_insync import Contract, Fill
from ib_insync.objects import CommissionReport, Execution

from daytrading.broker.api import FillReport
from daytrading.broker.fills import FillTracker

NOW = datetime(2024, 3, 5, 15, 0, tzinfo=UTC)


def _fill(exec_id: str, *, client_id: int = 10, commission: float | None = None) -> Fill:
    ex = Execution(execId=exec_id, time=NOW, side="SLD", shares=5, price=10.0, permId=9,
                   clientId=client_id, orderId=3, orderRef="em:tp:1")
    report = CommissionReport()
    if commission is not None:
        report.execId, report.commission = exec_id, commission
    return Fill(Contract(symbol="AAPL"), ex, report, NOW)


def _tracker(fills: list[Fill], wait: float = 0.2) -> tuple[FillTracker, list[FillReport]]:
    session = SimpleNamespace(ib=SimpleNamespace(fills=lambda: list(fills)), client_id=10,
                              log=logging.getLogger("test.fills"))
    out: list[FillReport] = []
    return FillTracker(session, out.append, commission_wait=wait), out  # type: ignore[arg-type]


def test_fills_before_the_first_connect_are_not_emitted() -> None:
    fills = [_fill("old", commission=1.0)]
    tracker, out = _tracker(fills)
    tracker.scan()  # not armed yet: nothing
    tracker.baseline()
    tracker.scan()
    assert out == []


def test_fill_with_commission_is_emitted_once_and_other_clients_are_ignored() -> None:
    async def scenario() -> list[FillReport]:
        fills: list[Fill] = []
        tracker, out = _tracker(fills)
        tracker.baseline()
        fills += [_fill("a", commission=1.25), _fill("x", client_id=2, commission=1.0)]
        tracker.scan()
        tracker.scan()
        return out

    out = asyncio.run(scenario())
    assert [(f.exec_id, f.commission) for f in out] == [("a", 1.25)]


def test_fill_is_held_until_its_commission_arrives() -> None:
    async def scenario() -> tuple[list[FillReport], int]:
        fills: list[Fill] = []
        tracker, out = _tracker(fills, wait=5.0)
        tracker.baseline()
        fills.append(_fill("b"))
        tracker.scan()
        before = len(out)
        fills[0].commissionReport.execId = "b"
        fills[0].commissionReport.commission = 0.75
        tracker.scan()
        return out, before

    out, before = asyncio.run(scenario())
    assert before == 0
    assert [(f.exec_id, f.commission) for f in out] == [("b", 0.75)]


def test_late_commission_gives_a_second_report_with_the_same_exec_id() -> None:
    async def scenario() -> list[FillReport]:
        fills: list[Fill] = []
        tracker, out = _tracker(fills, wait=0.05)
        tracker.baseline()
        fills.append(_fill("c"))
        tracker.scan()
        await asyncio.sleep(0.1)  # the hold expires: reported without commission
        fills[0].commissionReport.execId = "c"
        fills[0].commissionReport.commission = 2.0
        tracker.scan()
        tracker.scan()
        return out

    out = asyncio.run(scenario())
    assert [(f.exec_id, f.commission) for f in out] == [("c", None), ("c", 2.0)]


def test_reconnect_rescan_does_not_repeat_fills() -> None:
    async def scenario() -> list[FillReport]:
        fills: list[Fill] = []
        tracker, out = _tracker(fills)
        tracker.baseline()
        fills.append(_fill("d", commission=1.0))
        tracker.scan()
        tracker.reset_cursor()  # socket closed: ib_insync forgets, then re-reports
        fills[:] = [_fill("d", commission=1.0), _fill("e", commission=1.0)]
        tracker.scan()
        return out

    out = asyncio.run(scenario())
    assert [f.exec_id for f in out] == ["d", "e"]


def test_flush_reports_held_fills_on_shutdown() -> None:
    async def scenario() -> list[FillReport]:
        fills: list[Fill] = []
        tracker, out = _tracker(fills, wait=30.0)
        tracker.baseline()
        fills.append(_fill("f"))
        tracker.scan()
        tracker.flush()
        return out

    out = asyncio.run(scenario())
    assert [(f.exec_id, f.commission) for f in out] == [("f", None)]
