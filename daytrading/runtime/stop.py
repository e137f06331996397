"""Stopping a process cleanly, on Windows (Ctrl+C, Ctrl+Break) and POSIX (SIGINT, SIGTERM)."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from daytrading.core.errors import ConfigError


async def wait_or_stop(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep `seconds`, waking early when `stop` is set (True then): a loop's pause that
    never delays a shutdown."""
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        return False
    return True


def install_stop_handlers(stop: asyncio.Event, on_second: Callable[[], None] | None = None) -> None:
    """Ctrl+C / terminate set `stop`; a second signal calls `on_second` (force)."""
    loop = asyncio.get_running_loop()
    count = {"n": 0}

    def handler(signum: int, frame: Any) -> None:  # noqa: ARG001 - signal API
        count["n"] += 1
        if count["n"] > 1 and on_second is not None:
            on_second()
        loop.call_soon_threadsafe(stop.set)

    signals = [signal.SIGINT, signal.SIGTERM]
    if sys.platform == "win32":
        signals.append(signal.SIGBREAK)  # CTRL_BREAK_EVENT from the supervisor
    for sig in signals:
        signal.signal(sig, handler)


def run_process(program: str, main: Coroutine[Any, Any, int]) -> int:
    """Run a process's main coroutine with the exit codes the supervisor reads: 2 when the
    configuration is refused (a restart would fail the same way), 0 after Ctrl+C."""
    try:
        return asyncio.run(main)
    except ConfigError as exc:
        print(f"{program}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0
