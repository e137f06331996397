"""Which tape a run reads: the seeded synthetic tape or a bar file, behind one small protocol.

Why a protocol: the engine asks a tape only for its symbols, a day path and (for a file or a
scenario) the moment a run should start by default; it never cares which kind it has.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from typing import Protocol

from ibsim.market.calendar import NyseCalendar
from ibsim.market.path import DayPath
from ibsim.market.synthetic import SyntheticTape

SYNTHETIC = "synthetic"


class Tape(Protocol):
    """A source of day paths (SyntheticTape, FileTape, Scenario)."""

    def symbols(self) -> list[str]: ...
    def day_path(self, symbol: str, day: date) -> DayPath: ...
    def default_start(self) -> datetime | None: ...


def open_tape(spec: str, seed: int, symbols: Iterable[str], calendar: NyseCalendar) -> Tape:
    """`spec` is "synthetic" (or "") for the seeded tape, else the path of a CSV/Parquet bar
    file. Raises TapeError (a ValueError) for a file that cannot be used."""
    wanted = [s.upper() for s in symbols]
    if spec in ("", SYNTHETIC):
        return SyntheticTape(seed, wanted, calendar)
    # Imported here on purpose: tapefile needs pandas (about 0.4 s to import), and only a run
    # with --tape FILE reads one; the synthetic tape and `python -m ibsim ctl` stay light.
    from ibsim.market.tapefile import FileTape

    return FileTape(spec, calendar, symbols=wanted or None)
