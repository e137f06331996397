"""Simulated time: sim_now = start + (wall_now - wall_start) * speed.

Why this shape: every process of the suite computes the same simulated time from the same two
anchors (sim_epoch, wall_epoch) and the speed (see the ctl `clock` command), so the simulator
and its clients agree on "now" without a time feed. Rebasing (set_speed, jump_to) moves the
anchors so simulated time never runs backwards.

The wall source is injectable so tests drive time by hand instead of sleeping.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

from ibsim.market.calendar import NY, REGULAR_OPEN, NyseCalendar, ny_epoch

DEFAULT_LEAD = timedelta(minutes=5)  # default start: this long before the 09:30 bell


def default_start(wall_now: datetime | None = None, calendar: NyseCalendar | None = None,
                  lead: timedelta = DEFAULT_LEAD) -> datetime:
    """The most recent NYSE trading day (today if it is one), `lead` before 09:30 ET, in UTC."""
    cal = calendar or NyseCalendar()
    now = wall_now or datetime.now(UTC)
    today: date = now.astimezone(NY).date()
    day = cal.session_on_or_before(today)
    return datetime.fromtimestamp(ny_epoch(day, REGULAR_OPEN), UTC) - lead


class SimClock:
    """A clock whose simulated time runs `speed` times faster than the wall clock."""

    def __init__(self, start: datetime, speed: float = 1.0,
                 wall: Callable[[], float] = time.time) -> None:
        if start.tzinfo is None:
            raise ValueError("SimClock start must be timezone-aware (e.g. UTC); got a naive datetime")
        if speed < 0:
            raise ValueError(f"clock speed must be >= 0, got {speed}")
        self._wall = wall
        self.speed = float(speed)
        self.sim_epoch = start.timestamp()
        self.wall_epoch = wall()

    def now_epoch(self) -> float:
        return self.sim_epoch + (self._wall() - self.wall_epoch) * self.speed

    def now(self) -> datetime:
        """Simulated now as an aware UTC datetime."""
        return datetime.fromtimestamp(self.now_epoch(), UTC)

    def _rebase(self, sim_epoch: float) -> None:
        self.sim_epoch = sim_epoch
        self.wall_epoch = self._wall()

    def set_speed(self, speed: float) -> None:
        """Change the speed from now on (simulated time stays continuous)."""
        if speed < 0:
            raise ValueError(f"clock speed must be >= 0, got {speed}")
        self._rebase(self.now_epoch())
        self.speed = float(speed)

    def jump_to(self, when: datetime | float) -> None:
        """Move simulated time forward to `when` (never backwards)."""
        target = when.timestamp() if isinstance(when, datetime) else float(when)
        now = self.now_epoch()
        if target < now - 1e-6:
            raise ValueError(
                f"cannot move the simulated clock backwards "
                f"({datetime.fromtimestamp(target, UTC)} < {datetime.fromtimestamp(now, UTC)})"
            )
        self._rebase(target)

    def info(self) -> dict[str, object]:
        """The ctl `clock` answer: sim_now = sim_epoch + (time.time() - wall_epoch) * speed."""
        return {
            "time": self.now().isoformat(),
            "speed": self.speed,
            "sim_epoch": self.sim_epoch,
            "wall_epoch": self.wall_epoch,
        }


class ManualWall:
    """A hand-driven wall clock for tests: `advance(seconds)` instead of sleeping."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.t = start

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds
