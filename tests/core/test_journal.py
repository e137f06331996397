"""daytrading/core/journal.py: the one way to journal (log line and event row together)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

import observability
from daytrading.core.clock import FixedClock
from daytrading.core.errors import TransientError
from daytrading.core.journal import Journal
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
