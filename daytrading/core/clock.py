"""Where "now" comes from: the wall clock live, a shared simulated clock under ibsim.

Decisions never read the time themselves; processes pass `clock.now()` in. Under the
simulator every process derives the same time from three numbers the simulator publishes
(sim_epoch, wall_epoch, speed), so the exit manager, the day trader and the supervisor agree
without talking to each other. New York dates are trading dates.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any, Protocol, runtime_checkable
from zoneinfo import ZoneInfo

from daytrading.core.errors import ConfigError, OperationalError, TransientError
from ibsim import ctl

NEW_YORK = ZoneInfo("America/New_York")



@runtime_checkable
class Clock(Protocol):
    """Aware-UTC `now()`, and sleeps measured in simulated seconds."""

    @property
    def speed(self) -> float: ...

    def now(self) -> datetime: ...

    def wall_seconds(self, sim_seconds: float) -> float: ...

    async def sleep(self, sim_seconds: float) -> None: ...


def _require_aware(dt: datetime) -> datetime:
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError(
            f"naive datetime {dt.isoformat()}: pass a timezone-aware one "
            "(datetime.now(UTC) or clock.now())"
        )
    return dt


def to_new_york(dt: datetime) -> datetime:
    """The same instant in New York time."""
    return _require_aware(dt).astimezone(NEW_YORK)


def trading_date(dt: datetime) -> date:
    """The New York calendar date of an instant: the day a trade belongs to."""
    return to_new_york(dt).date()


def parse_instant(value: datetime | str, *, naive_as: tzinfo = UTC) -> datetime:
    """An aware datetime from a datetime or ISO 8601 text (a trailing Z is accepted); a naive
    one is taken to be in `naive_as`. Raises ValueError for text that is not a time."""
    if isinstance(value, datetime):
        moment = value
    else:
        text = str(value).strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=naive_as)


def parse_instant_or_none(value: object, *, naive_as: tzinfo = UTC) -> datetime | None:
    """Like parse_instant, but None for a missing or unreadable value (display code)."""
    if value is None or value == "":
        return None
    if not isinstance(value, datetime | str):
        return None
    try:
        return parse_instant(value, naive_as=naive_as)
    except ValueError:
        return None


def sim_now_epoch(sim_epoch: float, wall_epoch: float, speed: float, wall_now: float) -> float:
    """The one formula every process uses: sim_epoch + (wall_now - wall_epoch) * speed."""
    return sim_epoch + (wall_now - wall_epoch) * speed


def wall_seconds(clock: Clock, sim_seconds: float) -> float:
    """Wall-clock seconds to wait for `sim_seconds` of `clock` time (for time.sleep, timeouts)."""
    return clock.wall_seconds(sim_seconds)


class WallClock:
    """Real time. Sleeping N seconds takes N seconds."""

    speed = 1.0

    def now(self) -> datetime:
        return datetime.now(UTC)

    def wall_seconds(self, sim_seconds: float) -> float:
        return max(0.0, sim_seconds)

    async def sleep(self, sim_seconds: float) -> None:
        await asyncio.sleep(self.wall_seconds(sim_seconds))


    def __repr__(self) -> str:
        return "WallClock()"


class SimClock:
    """Simulated time: sim_now = sim_epoch + (time.time() - wall_epoch) * speed.

    `wall_time` is injectable so tests need not wait. Sleeping N simulated seconds takes
    N / speed wall seconds.
    """

    def __init__(
        self,
        sim_epoch: float,
        wall_epoch: float,
        speed: float,
        *,
        wall_time: Callable[[], float] = time.time,
    ) -> None:
        if not speed > 0:
            raise ValueError(f"simulation speed must be > 0, got {speed!r}")
        self.sim_epoch = float(sim_epoch)
        self.wall_epoch = float(wall_epoch)
        self._speed = float(speed)
        self._wall_time = wall_time

    @property
    def speed(self) -> float:
        return self._speed

    @classmethod
    def starting_at(cls, sim_start: datetime, speed: float, **kwargs: Any) -> SimClock:
        """A clock that reads `sim_start` now and runs `speed` times faster than real time."""
        wall_time = kwargs.get("wall_time", time.time)
        return cls(_require_aware(sim_start).timestamp(), wall_time(), speed, **kwargs)

    @classmethod
    def from_ibsim(cls, host: str, port: int, timeout: float = 5.0) -> SimClock:
        """Ask a running ibsim for its clock over the control channel (same port as the API).

        Raises TransientError when ibsim is not (yet) reachable, OperationalError when it
        answers something that is not a clock, ConfigError for a non-loopback host.
        """
        result = ibsim_request(host, port, "clock", timeout=timeout)
        try:
            return cls(float(result["sim_epoch"]), float(result["wall_epoch"]),
                       float(result["speed"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise OperationalError(
                f"ibsim at {host}:{port} answered `clock` with {result!r}, not a clock "
                "(sim_epoch, wall_epoch, speed). Fix: run matching versions of ibsim and the suite."
            ) from exc

    def now(self) -> datetime:
        epoch = sim_now_epoch(self.sim_epoch, self.wall_epoch, self._speed, self._wall_time())
        return datetime.fromtimestamp(epoch, UTC)

    def wall_seconds(self, sim_seconds: float) -> float:
        return max(0.0, sim_seconds) / self._speed

    def sim_seconds(self, wall_seconds: float) -> float:
        return wall_seconds * self._speed

    async def sleep(self, sim_seconds: float) -> None:
        await asyncio.sleep(self.wall_seconds(sim_seconds))


    def __repr__(self) -> str:
        return (f"SimClock(sim_epoch={self.sim_epoch!r}, wall_epoch={self.wall_epoch!r}, "
                f"speed={self._speed!r})")


class ManualClock:
    """A test clock that moves only when told to; `sleep` advances it instead of waiting."""

    speed = float("inf")

    def __init__(self, start: datetime) -> None:
        self._now = _require_aware(start).astimezone(UTC)

    def now(self) -> datetime:
        return self._now

    def set(self, when: datetime) -> None:
        self._now = _require_aware(when).astimezone(UTC)

    def advance(self, seconds: float | timedelta) -> datetime:
        delta = seconds if isinstance(seconds, timedelta) else timedelta(seconds=seconds)
        self._now += delta
        return self._now

    def wall_seconds(self, sim_seconds: float) -> float:
        return 0.0

    async def sleep(self, sim_seconds: float) -> None:
        self.advance(max(0.0, sim_seconds))
        await asyncio.sleep(0)  # still yield, like a real sleep, so other tasks run


    def __repr__(self) -> str:
        return f"ManualClock({self._now.isoformat()})"


class FixedClock(ManualClock):
    """A test clock frozen at one instant: sleeping returns at once and time does not move."""

    def advance(self, seconds: float | timedelta) -> datetime:
        return self._now

    def __repr__(self) -> str:
        return f"FixedClock({self._now.isoformat()})"


def ibsim_request(host: str, port: int, cmd: str, args: dict[str, Any] | None = None, *,
                  timeout: float = 5.0) -> Any:
    """One command on ibsim's control channel (ibsim's own client), its failures typed by
    the reaction they need: not loopback -> ConfigError, nothing answers -> TransientError,
    refused or not the control protocol -> OperationalError."""
    try:
        return ctl.ctl_request(host, port, cmd, args, timeout)
    except ctl.CtlNotLoopback as exc:
        raise ConfigError(f"{exc}. Fix: use 127.0.0.1.") from exc
    except ctl.CtlUnreachable as exc:
        raise TransientError(
            f"ibsim control channel at {host}:{port} did not answer `{cmd}` ({exc}). "
            "Fix: start the simulator (python -m ibsim) or check the port."
        ) from exc
    except ctl.CtlRefused as exc:
        raise OperationalError(f"ibsim refused control command `{cmd}`: {exc.reason}") from exc
    except ctl.CtlError as exc:
        raise OperationalError(f"ibsim at {host}:{port} answered `{cmd}` with something that "
                               f"is not the control protocol: {exc}") from exc
