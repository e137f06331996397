"""What the supervisor runs and how it treats a death: child specs and the restart decision.

Pure (no processes, no clock): `decide_restart` maps "crash number n of this child within its
window" to restart-now, restart-after-a-delay or give up, with the reason in words, so the
policy is testable on its own and the journal says why each restart was paced as it was.

- The exit manager (ALWAYS) is the only thing protecting open positions: restart at once,
  space restarts out only in a crash loop, never give up.
- The day trader (CAPPED) is optional for safety: exponential backoff with full jitter on
  every restart, FATAL (and an alert) past the crash-loop cap.
"""

from __future__ import annotations

import random
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from daytrading.config.settings import PROJECT_ROOT, Settings
from daytrading.core.backoff import BackoffPolicy
from daytrading.core.errors import ConfigError

EXIT_MANAGER_READY_STATES = frozenset({"protecting"})
# "starting" (connecting, reconciling) and "stopping" are not running: a day trader seen only
# in them has not proved it works.
DAY_TRADER_RUNNING_STATES = frozenset(
    {"premarket", "scanning", "trading", "paused", "done_for_day", "degraded"}
)


class RestartPolicy(StrEnum):
    ALWAYS = "always"  # exit manager: restart at once; back off only in a crash loop; never FATAL
    CAPPED = "capped"  # day trader: backoff + jitter each time; FATAL past the crash-loop cap


@dataclass(frozen=True, slots=True)
class ChildSpec:
    """One supervised process. `argv[0]` is the interpreter (use sys.executable or the venv's)."""

    name: str  # the heartbeat process name: "exit_manager", "day_trader"
    argv: tuple[str, ...]
    policy: RestartPolicy = RestartPolicy.CAPPED
    cwd: Path | None = None
    env: Mapping[str, str] = field(default_factory=dict)  # added to the supervisor's env
    ready_states: frozenset[str] = frozenset()  # empty: ready at its first heartbeat
    depends_on: str | None = None  # (re)started only while that child is ready
    heartbeat_timeout_seconds: float = 15.0
    first_heartbeat_timeout_seconds: float = 60.0  # from spawn to the first heartbeat
    max_restarts: int = 5  # CAPPED: crashes allowed within the window before FATAL
    crash_window_seconds: float = 600.0
    backoff: BackoffPolicy = field(default_factory=BackoffPolicy)  # CAPPED: every restart
    crash_loop_threshold: int = 3  # ALWAYS: crashes within the window that make a loop
    crash_loop_backoff: BackoffPolicy = field(
        default_factory=lambda: BackoffPolicy(initial_seconds=1.0, max_seconds=10.0)
    )
    restart_on_clean_exit: bool = True  # False: exit code 0 means "done for today"
    stop_grace_seconds: float = 10.0  # graceful stop, then kill
    kill_grace_seconds: float = 3.0  # terminate -> kill escalation on a hung tree
    log_path: Path | None = None  # append stdout+stderr here; None: share the console

    def __post_init__(self) -> None:
        if not self.name or not self.argv:
            raise ConfigError("a supervised child needs a name and a command line (argv)")
        if self.heartbeat_timeout_seconds <= 0 or self.first_heartbeat_timeout_seconds <= 0:
            raise ConfigError(
                f"{self.name}: heartbeat timeouts must be > 0 seconds "
                "(supervisor.heartbeat_timeout_seconds in config.toml)"
            )
        if self.max_restarts < 0 or self.crash_loop_threshold < 1:
            raise ConfigError(
                f"{self.name}: max_restarts must be >= 0 and crash_loop_threshold >= 1"
            )


def _shared_spec_fields(settings: Settings, script: str, python: str, root: Path,
                       extra_args: Sequence[str], log_path: Path | None) -> dict[str, Any]:
    """What both children get from the supervisor settings."""
    sup = settings.supervisor
    return dict(
        argv=(python, str(root / script), *extra_args), cwd=root,
        heartbeat_timeout_seconds=sup.heartbeat_timeout_seconds,
        first_heartbeat_timeout_seconds=sup.first_heartbeat_timeout_seconds,
        crash_window_seconds=sup.crash_window_seconds,
        stop_grace_seconds=sup.stop_grace_seconds, kill_grace_seconds=sup.kill_grace_seconds,
        log_path=log_path,
    )


def exit_manager_spec(
    settings: Settings,
    *,
    python: str = sys.executable,
    root: Path = PROJECT_ROOT,
    extra_args: Sequence[str] = (),
    log_path: Path | None = None,
) -> ChildSpec:
    """The exit manager as the supervisor runs it: always restarted, ready at `protecting`."""
    sup = settings.supervisor
    return ChildSpec(
        name="exit_manager",
        policy=RestartPolicy.ALWAYS,
        ready_states=EXIT_MANAGER_READY_STATES,
        crash_loop_threshold=sup.exit_manager_crash_loop_threshold,
        crash_loop_backoff=BackoffPolicy(
            initial_seconds=sup.backoff_initial_seconds,
            max_seconds=sup.exit_manager_backoff_max_seconds,
        ),
        restart_on_clean_exit=True,
        **_shared_spec_fields(settings, "exit_manager.py", python, root, extra_args, log_path),
    )


def day_trader_spec(
    settings: Settings,
    *,
    python: str = sys.executable,
    root: Path = PROJECT_ROOT,
    extra_args: Sequence[str] = (),
    log_path: Path | None = None,
) -> ChildSpec:
    """The day trader: started after the exit manager protects, capped restarts, clean exit = done."""
    sup = settings.supervisor
    return ChildSpec(
        name="day_trader",
        policy=RestartPolicy.CAPPED,
        ready_states=DAY_TRADER_RUNNING_STATES,
        depends_on="exit_manager",
        max_restarts=sup.day_trader_max_restarts,
        backoff=BackoffPolicy(
            initial_seconds=sup.backoff_initial_seconds, max_seconds=sup.backoff_max_seconds
        ),
        restart_on_clean_exit=False,
        **_shared_spec_fields(settings, "day_trader.py", python, root, extra_args, log_path),
    )


# --------------------------------------------------------------------------------------------
# The restart decision (pure).
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RestartDecision:
    action: Literal["restart", "fatal"]
    delay_seconds: float
    crash_loop: bool
    reason: str


CONFIG_ERROR_EXIT_CODE = 2  # every process exits 2 when it refuses its configuration


def decide_restart(
    spec: ChildSpec, crashes_in_window: int, rng: Callable[[], float] = random.random,
    *, exit_code: int | None = None,
) -> RestartDecision:
    """What to do after crash number `crashes_in_window` (this one included) of `spec`.

    A configuration refusal (exit code 2) will not fix itself by restarting: a capped child
    goes FATAL at once; an always-on child waits the longest crash-loop delay between tries
    (it never gives up, because positions may be open).
    """
    n, window = crashes_in_window, spec.crash_window_seconds
    if exit_code == CONFIG_ERROR_EXIT_CODE:
        why = "refused its configuration (exit code 2); fix the setting its log names"
        if spec.policy is RestartPolicy.ALWAYS:
            delay = spec.crash_loop_backoff.max_seconds
            return RestartDecision("restart", delay, True, f"{why}; retrying in {delay:.0f}s")
        return RestartDecision("fatal", 0.0, True, why)
    if spec.policy is RestartPolicy.ALWAYS:
        if n < spec.crash_loop_threshold:
            return RestartDecision("restart", 0.0, False, f"restart at once ({n} in {window:.0f}s)")
        delay = spec.crash_loop_backoff.delay(n - spec.crash_loop_threshold, rng)
        return RestartDecision(
            "restart", delay, True,
            f"crash loop ({n} crashes in {window:.0f}s): restart in {delay:.2f}s, never giving up",
        )
    if n > spec.max_restarts:
        return RestartDecision(
            "fatal", 0.0, True,
            f"{n} crashes in {window:.0f}s exceed the cap of {spec.max_restarts} restarts",
        )
    delay = spec.backoff.delay(n - 1, rng)
    return RestartDecision(
        "restart", delay, n > 1, f"restart {n}/{spec.max_restarts} in {delay:.2f}s (backoff)"
    )
