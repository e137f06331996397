"""daytrading/runtime/journal.py and tasks.py: the one journal helper and task holder."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest

import observability
from daytrading.core.clock import FixedClock
from daytrading.core.errors import TransientError
from daytrading.runtime.journal import Journal
from daytrading.runtime.tasks import TaskSet
from tests.observability.support import MIDDAY


def test_journal_logs_and_writes_one_event(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    db = observability.get_database(tmp_path / "j.db", clock=FixedClock(MIDDAY))
    try:
        journal = Journal(db, "day_trader", logging.getLogger("test.journal"))
        with caplog.at_level(logging.WARNING, logger="test.journal"):
            journal.record("entry_gated", "AAPL: halted", symbol="AAPL", level="WARNING",
                           data={"gate": "halt"})
        events = db.get_events(kind="entry_gated")
        assert [(e["process"], e["symbol"], e["level"], e["message"]) for e in events] == [
            ("day_trader", "AAPL", "WARNING", "AAPL: halted")]
        assert events[0]["data"] == {"gate": "halt"}
        assert [r.getMessage() for r in caplog.records] == ["AAPL: halted"]
        assert caplog.records[0].__dict__["event"] == "entry_gated"
    finally:
        db.close()


class _BrokenStore:
    def record_event(self, kind: str, message: str, **kwargs: Any) -> int:
        raise TransientError("database is locked")


def test_a_failed_journal_write_is_logged_never_raised(caplog: pytest.LogCaptureFixture) -> None:
    journal = Journal(_BrokenStore(), "exit_manager", logging.getLogger("test.journal2"))
    with caplog.at_level(logging.WARNING, logger="test.journal2"):
        journal.write("exit_completed", "AAPL: done", symbol="AAPL")
    assert "could not journal exit_completed: database is locked" in caplog.text


def test_task_set_holds_drains_and_cancels() -> None:
    async def scenario() -> tuple[bool, bool, int, bool]:
        tasks = TaskSet()
        quick = tasks.spawn(asyncio.sleep(0, result="done"))
        slow = tasks.spawn(asyncio.sleep(30))
        finished = await tasks.drain(0.05)  # the slow one is still running
        late = await tasks.drain(0.01, cancel_late=True)
        return finished, late, len(tasks), quick.result() == "done" and slow.cancelled()

    finished, late, left, outcome = asyncio.run(scenario())
    assert (finished, late, left, outcome) == (False, False, 0, True)


def test_cancel_all_waits_for_every_task_to_unwind() -> None:
    unwound: list[str] = []

    async def worker(name: str) -> None:
        try:
            await asyncio.sleep(30)
        finally:
            unwound.append(name)

    async def scenario() -> int:
        tasks = TaskSet()
        for name in ("a", "b"):
            tasks.spawn(worker(name))
        await asyncio.sleep(0)
        await tasks.cancel_all()
        return len(tasks)

    assert asyncio.run(scenario()) == 0 and sorted(unwound) == ["a", "b"]
