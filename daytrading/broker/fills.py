"""Report every execution of this client's orders exactly once, with its commission.

Where fills come from: live execDetails, and the reqExecutions answer after a (re)connect,
which is how a fill that happened while the socket was down is found. ib_insync keeps every
execution of the session in `ib.fills()` (reset on disconnect), so after each handled
packet we look at the new entries, whatever their origin, and dedupe by exec_id across
reconnects.

Commission policy (documented in the README of the broker package): a fill is held until
its commission report arrives, at most `commission_wait` seconds (IB sends it right after
the execution), then emitted once via on_fill. If the report comes later still, a second
FillReport with the same exec_id and `commission` set is emitted: handlers that record
fills by exec_id treat it as a commission update (observability.update_fill_commission).

Fills that already existed at the first connect are not emitted (they predate this process;
use `executions_since()` to reconcile them). Other clients' executions are not emitted.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from ib_insync import Fill

from daytrading.broker.api import FillReport
from daytrading.broker.convert import commission_known, fill_report
from daytrading.broker.session import Session


class FillTracker:
    def __init__(
        self,
        session: Session,
        emit: Callable[[FillReport], None],
        *,
        commission_wait: float = 2.0,
    ) -> None:
        self.s = session
        self._emit = emit
        self.commission_wait = commission_wait
        self.armed = False  # False until the first connect's baseline
        self._cursor = 0  # how many of ib.fills() were looked at
        self._seen: set[str] = set()  # emitted (or pre-existing) exec ids
        self._pending: dict[str, tuple[Fill, asyncio.TimerHandle]] = {}
        self._late: dict[str, Fill] = {}  # emitted without commission; watching for it
        self.emitted = 0

    def baseline(self) -> None:
        """First connect: everything the broker already reported predates us."""
        for fill in self.s.ib.fills():
            self._seen.add(fill.execution.execId)
        self._cursor = len(self.s.ib.fills())
        self.armed = True

    def reset_cursor(self) -> None:
        """The socket closed: ib_insync forgot its fills; re-scan them after reconnecting."""
        self._cursor = 0

    def scan(self) -> None:
        """Called after every handled packet: pick up new fills and arrived commissions."""
        if not self.armed:
            return
        fills = self.s.ib.fills()
        if len(fills) < self._cursor:
            self._cursor = 0
        if len(fills) > self._cursor:
            for fill in fills[self._cursor:]:
                self._consider(fill)
            self._cursor = len(fills)
        if self._pending:
            for exec_id, (fill, timer) in list(self._pending.items()):
                if commission_known(fill):
                    timer.cancel()
                    del self._pending[exec_id]
                    self._send(fill)
        if self._late:
            for exec_id, fill in list(self._late.items()):
                if commission_known(fill):
                    del self._late[exec_id]
                    self.s.log.info("late commission for %s: %s", exec_id,
                                    fill.commissionReport.commission)
                    self._emit(fill_report(fill))

    def flush(self) -> None:
        """Emit every held fill now (shutting down): better without commission than lost."""
        for exec_id, (fill, timer) in list(self._pending.items()):
            timer.cancel()
            del self._pending[exec_id]
            self._send(fill)
        self._late.clear()

    def _consider(self, fill: Fill) -> None:
        ex = fill.execution
        exec_id = ex.execId
        if exec_id in self._pending:  # re-reported after a reconnect: watch the new object
            self._pending[exec_id] = (fill, self._pending[exec_id][1])
            return
        if exec_id in self._late:
            self._late[exec_id] = fill
        if not exec_id or exec_id in self._seen:
            return
        if ex.clientId != self.s.client_id:
            self._seen.add(exec_id)
            return
        if commission_known(fill):
            self._send(fill)
            return
        timer = asyncio.get_running_loop().call_later(
            self.commission_wait, self._expire, exec_id
        )
        self._pending[exec_id] = (fill, timer)

    def _expire(self, exec_id: str) -> None:
        entry = self._pending.pop(exec_id, None)
        if entry is None:
            return
        fill = entry[0]
        if commission_known(fill):
            self._send(fill)
            return
        self.s.log.info("no commission report for %s after %.1fs; reporting the fill now",
                        exec_id, self.commission_wait)
        self._send(fill)
        # ib.fills() objects are replaced on reconnect; watching this one is best effort
        self._late[exec_id] = fill
        while len(self._late) > 1000:
            self._late.pop(next(iter(self._late)))

    def _send(self, fill: Fill) -> None:
        exec_id = fill.execution.execId
        if exec_id in self._seen:
            return
        self._seen.add(exec_id)
        self.emitted += 1
        self._emit(fill_report(fill))
