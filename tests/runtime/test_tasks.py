"""daytrading/runtime/tasks.py: background tasks held until they finish."""

from __future__ import annotations

import asyncio

from daytrading.runtime.tasks import TaskSet


def test_task_set_holds_drains_and_cancels() -> None:
    async def scenario() -> tuple[bool, bool, int, bool]:
        tasks = TaskSet()
        quick = tasks.spawn(asyncio.sleep(0, result="done"))
        slow = tasks.spawn(asyncio.sleep(30))
        finished = await tasks.drain(0.05)  # the slow one is still running
        late = await tasks.drain(0.01, cancel_late=True)
        return finished, late, len(tasks), quick.result() == "done" and slow.cancelled()

    finished, late, left, outcome = asyncio.run(scenario())
    assert (finished, late, left, outcome) == (False, False, 0, True)


def test_cancel_all_waits_for_every_task_to_unwind() -> None:
    unwound: list[str] = []

    async def worker(name: str) -> None:
        try:
            await asyncio.sleep(30)
        finally:
            unwound.append(name)

    async def scenario() -> int:
        tasks = TaskSet()
        for name in ("a", "b"):
            tasks.spawn(worker(name))
        await asyncio.sleep(0)
        await tasks.cancel_all()
        return len(tasks)

    assert asyncio.run(scenario()) == 0 and sorted(unwound) == ["a", "b"]
