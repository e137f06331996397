"""The engine test rig: pinned scenario paths on one session day, a listener that records
every call, and a small order factory. The `make` fixture (conftest.py) builds engines on it."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any

from ibsim.engine.sim import SimEngine
from ibsim.market.calendar import NY
from ibsim.market.clock import ManualWall, SimClock
from ibsim.model import EngineConfig, SimOrder

DAY = date(2024, 11, 26)  # a Tuesday session

SCENARIO = {
    # up 1 $/min from 100 to 110 (09:30-09:40)
    "UPT": {"prev_close": 100, "path": [["09:30", 100], ["09:40", 110]]},
    # down 1 $/min from 100 to 90
    "DNT": {"prev_close": 100, "path": [["09:30", 100], ["09:40", 90]]},
    # up to 105 then back to 100
    "PEAK": {"prev_close": 100, "path": [["09:30", 100], ["09:35", 105], ["09:40", 100]]},
    # flat at 50 all day, pre-market included
    "FLAT": {"prev_close": 50, "path": [["04:00", 50], ["20:00", 50]]},
    # gaps to 30 from a 10 close
    "GAPR": {"prev_close": 10, "path": [["08:00", 30]], "interpolation": "step"},
}


def ny(hms: str) -> datetime:
    return datetime.combine(DAY, time.fromisoformat(hms), NY).astimezone(UTC)


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, tuple]] = []

    def __getattr__(self, name: str):
        if not name.startswith("on_"):
            raise AttributeError(name)
        return lambda *args: self.events.append((name, args))

    def of(self, kind: str) -> list[tuple]:
        return [a for k, a in self.events if k == kind]


def engine_factory(tmp_path: Path) -> Callable[..., tuple[SimEngine, Recorder, ManualWall]]:
    """make(start="09:29:00", **EngineConfig fields) -> (engine, recorder, wall clock)."""
    def _make(start: str = "09:29:00", **cfg: Any) -> tuple[SimEngine, Recorder, ManualWall]:
        f = tmp_path / "scenario.json"
        f.write_text(json.dumps({"date": DAY.isoformat(), "symbols": SCENARIO}))
        wall = ManualWall()
        config = EngineConfig(start=ny(start), scenario_file=str(f), **cfg)
        rec = Recorder()
        assert config.start is not None
        eng = SimEngine(config, rec, clock=SimClock(config.start, 1.0, wall=wall), wall=wall)
        return eng, rec, wall
    return _make


_ids = iter(range(1, 10**6))


def order(symbol="UPT", action="BUY", qty=100.0, otype="MKT", client=2, oid=None, **kw) -> SimOrder:
    return SimOrder(order_id=oid or next(_ids), client_id=client, perm_id=0, symbol=symbol,
                    action=action, total_qty=qty, order_type=otype, **kw)
