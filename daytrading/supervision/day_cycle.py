"""The supervisor's day on the market calendar: when to start the children and when to stop.

Pure: the schedule phase (daytrading.supervision.schedule) and what is running go in, a plan with a
reason comes out; the supervisor carries it out (spawn, stop, checkpoint, backup, summary).

- Awake phases (WAKING, TRADING, FLATTENING) run the children. CLOSING keeps them running
  (the exit manager may still be finishing an exit); SLEEPING stops them for the night, and
  that stop is the end of the session: checkpoint, backup, daily summary.
- A start for a session other than the one that last ran is a new day: the crash history,
  FATAL states and restart counts of the previous day are cleared, so yesterday's crash loop
  does not keep today's day trader down.
- If the machine slept through the night (hibernation) and wakes in the next session with
  yesterday's children still registered as running, the old session is closed first and the
  new one started clean.
- A simulated run never sleeps: it ends with --until or Ctrl+C.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from daytrading.supervision.schedule import Phase, ScheduleState

AWAKE_PHASES = frozenset({Phase.WAKING, Phase.TRADING, Phase.FLATTENING})


@dataclass(frozen=True, slots=True)
class CyclePlan:
    """What to do now. `close_session` first (if set), then `start` (if true)."""

    start: bool = False
    new_day: bool = False  # with start: clear the previous day's crash history first
    close_session: date | None = None  # stop the children; checkpoint, back up, summarise
    reason: str = ""

    @property
    def idle(self) -> bool:
        return not self.start and self.close_session is None


def plan_cycle(
    state: ScheduleState,
    *,
    running_session: date | None,
    last_session: date | None,
    sim: bool = False,
) -> CyclePlan:
    """The plan for `state`.

    running_session: the session the children were started for, None while they are stopped.
    last_session: the session that last ran (stopped or not), None before the first start.
    """
    session = state.session.session_date
    awake = state.phase in AWAKE_PHASES
    if running_session is not None:
        if sim:
            return CyclePlan(reason="simulated run: it ends with --until or Ctrl+C")
        if state.phase is Phase.SLEEPING:
            return CyclePlan(close_session=running_session,
                             reason=f"session {running_session} is over ({state.reason})")
        if awake and session != running_session:
            return CyclePlan(start=True, new_day=True, close_session=running_session,
                             reason=f"session {session} began while {running_session} still "
                                    "ran (the machine slept?): closing it, starting clean")
        return CyclePlan(reason=f"{state.phase.value.lower()}: children stay up")
    if awake:
        new_day = last_session != session
        return CyclePlan(start=True, new_day=new_day,
                         reason=f"{state.phase.value.lower()} for session {session}"
                                + (" (a new day)" if new_day else " (again)"))
    return CyclePlan(reason=f"{state.phase.value.lower()}: nothing to run")
