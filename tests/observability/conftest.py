"""Fixtures for the observability.py tests: a fake clock and a fresh database file."""

from __future__ import annotations

from pathlib import Path

import pytest

import observability
from tests.observability.support import MIDDAY, FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(MIDDAY)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "trading_history.db"


@pytest.fixture
def db(db_path: Path, clock: FakeClock):
    database = observability.get_database(db_path, clock=clock, process="tester")
    yield database
    database.close()
