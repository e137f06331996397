"""The order book of the simulated broker: every order's engine-side state and the indexes
the matcher needs (working orders per symbol, untransmitted orders per group, children waiting
for their parent), plus the id counters.

Why separate: the indexes must stay consistent (an order is in exactly one of working /
held / waiting, or done); keeping every mutation here makes that easy to check.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from ibsim.engine.rules import oca_family
from ibsim.model import Execution, SimOrder

DONE = frozenset({"Filled", "Cancelled", "Inactive", "ApiCancelled"})
FIRST_PERM_ID = 1_200_000_001


@dataclass(slots=True, eq=False)
class OrderState:
    order: SimOrder
    since: float = 0.0  # tape points at or before this instant are not for this order
    triggered: bool = False  # stop / trailing stop has triggered
    trigger_t: float = 0.0  # when it triggered (it cannot trade on earlier tape points)
    fresh: bool = True  # next evaluation is the order's arrival (trades at the touch)
    opg_open: float = 0.0  # OPG: epoch of the opening auction it is for
    day_end: float | None = None  # DAY: when it expires
    value_filled: float = 0.0
    commission_paid: float = 0.0
    where: str = ""  # "working" | "held" | "waiting" | "done"
    cancel_pending: bool = False

    @property
    def key(self) -> tuple[int, int]:
        return self.order.client_id, self.order.order_id


class Book:
    def __init__(self) -> None:
        self.states: dict[tuple[int, int], OrderState] = {}
        self.log: list[SimOrder] = []
        self.executions: list[Execution] = []
        self._working: dict[str, list[OrderState]] = {}
        self._held: dict[tuple[int, int], list[OrderState]] = {}
        self._waiting: dict[tuple[int, int], list[OrderState]] = {}
        self.next_order_id = 1
        self.next_perm_id = FIRST_PERM_ID
        self.exec_seq = 0

    # --- ids -------------------------------------------------------------------------------
    def assign_ids(self, order: SimOrder) -> None:
        if not order.perm_id:
            order.perm_id = self.next_perm_id
            self.next_perm_id += 1
        else:
            self.next_perm_id = max(self.next_perm_id, order.perm_id + 1)
        self.next_order_id = max(self.next_order_id, order.order_id + 1)

    def next_exec_seq(self) -> int:
        self.exec_seq += 1
        return self.exec_seq

    # --- membership ------------------------------------------------------------------------
    def add(self, st: OrderState) -> None:
        self.states[st.key] = st
        self.log.append(st.order)

    def log_rejected(self, order: SimOrder) -> None:
        self.log.append(order)

    def add_working(self, st: OrderState) -> None:
        st.where = "working"
        self._working.setdefault(st.order.symbol, []).append(st)

    def hold(self, st: OrderState) -> None:
        """Untransmitted (transmit=False): waits for a transmitting order of its group."""
        st.where = "held"
        self._held.setdefault(self.group_root(st.order), []).append(st)

    def take_held(self, order: SimOrder) -> list[OrderState]:
        return self._held.pop(self.group_root(order), [])

    @staticmethod
    def group_root(order: SimOrder) -> tuple[int, int]:
        return order.client_id, order.parent_id or order.order_id

    def wait_for_parent(self, st: OrderState) -> None:
        st.where = "waiting"
        self._waiting.setdefault((st.order.client_id, st.order.parent_id), []).append(st)

    def release_children(self, parent: OrderState) -> list[OrderState]:
        children = self._waiting.pop(parent.key, [])
        for c in children:
            self.add_working(c)
        return children

    def drop_children(self, parent: OrderState) -> list[OrderState]:
        """Children that must go with a parent that was cancelled before it filled."""
        if parent.order.status == "Filled":
            return []
        out = list(self._waiting.get(parent.key, []))
        out += [st for st in self._held.get(parent.key, []) if st is not parent]
        return out

    def finish(self, st: OrderState) -> None:
        """Take an order out of whichever index holds it (it is done)."""
        where, st.where = st.where, "done"
        if where == "working":
            lst = self._working.get(st.order.symbol, [])
            if st in lst:
                lst.remove(st)
            if not lst:
                self._working.pop(st.order.symbol, None)
        elif where == "held":
            lst = self._held.get(self.group_root(st.order), [])
            if st in lst:
                lst.remove(st)
        elif where == "waiting":
            lst = self._waiting.get((st.order.client_id, st.order.parent_id), [])
            if st in lst:
                lst.remove(st)

    # --- queries ---------------------------------------------------------------------------
    def symbols_with_orders(self) -> list[str]:
        return list(self._working)

    def has_working(self, symbol: str) -> bool:
        return bool(self._working.get(symbol))

    def working(self, symbol: str) -> list[OrderState]:
        return list(self._working.get(symbol, ()))

    def all_working(self) -> Iterator[OrderState]:
        for lst in list(self._working.values()):
            yield from list(lst)

    def open_states(self) -> list[OrderState]:
        """Working and waiting-for-parent orders (untransmitted ones are not open at IB)."""
        return [st for st in self.states.values() if st.where in ("working", "waiting")]

    def pending_states(self) -> list[OrderState]:
        """Everything not done, untransmitted included."""
        return [st for st in self.states.values() if st.where in ("working", "waiting", "held")]

    def oca_siblings(self, st: OrderState) -> list[OrderState]:
        """Not-done orders one-cancels-all with `st`: the same OCA group, or the other
        children of the same bracket parent."""
        o = st.order
        if not o.oca_group and not o.parent_id:
            return []
        out = []
        for other in self.states.values():
            if other is st or other.where in ("done", ""):
                continue
            p = other.order
            if o.oca_group and p.oca_group == o.oca_group:
                out.append(other)
            elif (not o.oca_group and o.parent_id and p.parent_id == o.parent_id
                  and p.client_id == o.client_id):
                out.append(other)
        return out

    def working_sell_qty(self, symbol: str, exclude: SimOrder) -> float:
        """Shares already promised by open SELL orders on a symbol, counting each OCA family
        once (its largest remaining) and leaving out the family of `exclude`."""
        mine = oca_family(exclude)
        groups: dict[str, float] = {}
        for st in self.states.values():
            o = st.order
            if st.where != "working" or o.symbol != symbol or o.action != "SELL":
                continue
            if o is exclude or (o.client_id, o.order_id) == (exclude.client_id, exclude.order_id):
                continue
            g = oca_family(o)
            if g == mine:
                continue
            groups[g] = max(groups.get(g, 0.0), o.remaining)
        return sum(groups.values())
