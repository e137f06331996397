"""Database calls off the event loop, on one ordered background thread."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from observability import Database

T = TypeVar("T")


class DbWorker:
    """Runs database calls on one background thread, strictly in submission order.

    Why: the durable writes (positions, intents, fills) wait for an fsync, milliseconds here
    and far more on a busy Windows disk. Made on the event loop they would hold up every
    quote and order message queued behind them; here the loop only queues the call.
    One thread keeps the order of writes (an intent is SUBMITTED before it is FILLED) and
    lets a read see every write queued before it.
    """

    def __init__(self, db: Database, *, name: str = "db-worker",
                 logger: logging.Logger | None = None) -> None:
        self.db = db
        self.log = logger or logging.getLogger(name)
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=1,
                                                           thread_name_prefix=name)
        self._last: concurrent.futures.Future[Any] | None = None
        self._lock = threading.Lock()
        self.failures = 0

    def _resolve(self, fn: Callable[..., T] | str) -> Callable[..., T]:
        return getattr(self.db, fn) if isinstance(fn, str) else fn

    def _queue(self, fn: Callable[..., T] | str, args: Any, kwargs: Any
               ) -> concurrent.futures.Future[T]:
        call = self._resolve(fn)
        with self._lock:
            future = self._pool.submit(call, *args, **kwargs)
            self._last = future
        return future

    def submit(self, fn: Callable[..., Any] | str, *args: Any, **kwargs: Any
               ) -> concurrent.futures.Future[Any]:
        """Queue fn(*args, **kwargs) (a callable, or the name of a database method) and
        return at once; a failure is logged (the caller does not wait for it)."""
        future = self._queue(fn, args, kwargs)
        name = fn if isinstance(fn, str) else getattr(fn, "__name__", repr(fn))

        def report(done: concurrent.futures.Future[Any]) -> None:
            exc = done.exception()
            if exc is not None:
                self.failures += 1
                self.log.error("database call %s failed: %s", name, exc)

        future.add_done_callback(report)
        return future

    async def call(self, fn: Callable[..., T] | str, *args: Any, **kwargs: Any) -> T:
        """Run fn on the worker after everything queued before it; its result or error."""
        return await asyncio.wrap_future(self._queue(fn, args, kwargs))

    async def drain(self, timeout: float | None = None) -> bool:
        """Wait until everything queued so far has run (False on timeout)."""
        last = self._last
        if last is None or last.done():
            return True
        try:
            await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(last)), timeout)
        except TimeoutError:
            return False
        except Exception:  # noqa: BLE001 - already logged by submit()
            pass
        return True

    def close(self) -> None:
        """Run what is queued, then stop the thread."""
        self._pool.shutdown(wait=True)
