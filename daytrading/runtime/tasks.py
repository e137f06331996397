"""Background tasks a component starts, held until they finish.

Why: asyncio keeps only a weak reference to a task, so a fire-and-forget task can vanish
mid-exit; and a clean shutdown (or a test) must be able to wait for what is in flight.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class TaskSet:
    """The tasks one component spawned and that have not finished yet."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def __len__(self) -> int:
        return len(self._tasks)

    async def drain(self, timeout: float | None = None, *, cancel_late: bool = False) -> bool:
        """Wait for every task (True when all finished). With `cancel_late`, tasks still
        running after `timeout` are cancelled and awaited."""
        if not self._tasks:
            return True
        _, pending = await asyncio.wait(list(self._tasks), timeout=timeout)
        if pending and cancel_late:
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        return not pending

    async def cancel_all(self) -> None:
        """Cancel every task and wait until each has finished unwinding."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
