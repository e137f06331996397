"""The orderRef format: which part of the suite an order belongs to and what it is for.

Every order the suite sends carries `<owner>:<purpose>:<number>[:<attempt>]`:
`dt:entry:<intent_id>` (day trader), `em:tp:<position_id>` / `em:sl:` / `em:mkt:` (exit
manager), `op:liq:<intent_id>` (operator scripts), `op:test:connection`. The number is the
position id for orders about a position and the intent id otherwise; a later order for the
same position and purpose gets an attempt suffix (`em:tp:17:2`) so every ref stays unique.

Orders are matched back by permId and this ref (order ids do not survive a restart), so the
format is written and read here only: every other module calls these functions.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Owner(StrEnum):
    """Who placed an order, read from its ref; MANUAL for anything the suite did not send."""

    DAY_TRADER = "day_trader"
    EXIT_MANAGER = "exit_manager"
    OPERATOR = "operator"
    MANUAL = "manual"


PREFIX_BY_OWNER: dict[Owner, str] = {
    Owner.DAY_TRADER: "dt",
    Owner.EXIT_MANAGER: "em",
    Owner.OPERATOR: "op",
}
OWNER_BY_PREFIX: dict[str, Owner] = {prefix: owner for owner, prefix in PREFIX_BY_OWNER.items()}

# Purposes (the middle part).
ENTRY = "entry"
TARGET = "tp"
STOP = "sl"
MARKET = "mkt"
TRAIL = "trail"
LIQUIDATION = "liq"
TEST = "test"

ENTRY_PREFIX = "dt:entry:"  # every day-trader entry
EXIT_PREFIX = "em:"  # every exit-manager order
LIQUIDATION_PREFIX = "op:liq:"  # every emergency-liquidation order
TEST_PREFIX = "op:test:"  # scripts/test_connection.py's one test order
SUITE_PREFIXES: tuple[str, ...] = tuple(f"{p}:" for p in PREFIX_BY_OWNER.values())
TEST_CONNECTION_REF = f"op:{TEST}:connection"


@dataclass(frozen=True, slots=True)
class OrderRef:
    """A parsed orderRef. `number` is None when the third part is not a number
    (`op:test:connection`)."""

    prefix: str
    purpose: str
    number: int | None
    attempt: int = 1

    @property
    def owner(self) -> Owner:
        return OWNER_BY_PREFIX.get(self.prefix, Owner.MANUAL)

    def __str__(self) -> str:
        return order_ref(self.prefix, self.purpose, self.number or 0, self.attempt)


def prefix_for_process(process: str) -> str:
    """dt for the day trader, em for the exit manager, op for everything else (scripts)."""
    try:
        return PREFIX_BY_OWNER[Owner(process)]
    except (ValueError, KeyError):
        return PREFIX_BY_OWNER[Owner.OPERATOR]


def order_ref(prefix: str, purpose: str, number: int, attempt: int = 1) -> str:
    """`em`, `tp`, 17 -> `em:tp:17`; attempt 2 -> `em:tp:17:2`."""
    base = f"{prefix}:{purpose}:{number}"
    return base if attempt <= 1 else f"{base}:{attempt}"


def parse(ref: str | None) -> OrderRef | None:
    """The parts of a ref with at least owner, purpose and number; None for anything else
    (an empty ref, a hand-placed order's own text)."""
    parts = (ref or "").split(":")
    if len(parts) < 3 or not parts[0] or not parts[1]:
        return None
    number: int | None
    try:
        number = int(parts[2])
    except ValueError:
        number = None
    attempt = 1
    if len(parts) >= 4:
        try:
            attempt = int(parts[3])
        except ValueError:
            attempt = 1
    return OrderRef(parts[0], parts[1], number, attempt)


def owner_of(ref: str | None) -> Owner:
    """Which part of the suite an order belongs to; MANUAL when the ref is not ours."""
    text = ref or ""
    if ":" not in text:
        return Owner.MANUAL
    return OWNER_BY_PREFIX.get(text.split(":", 1)[0], Owner.MANUAL)


def purpose_of(ref: str | None) -> str:
    """`em:tp:17` -> `tp`; a ref without three parts -> ''."""
    parsed = parse(ref)
    return parsed.purpose if parsed else ""


def position_id_of(ref: str | None) -> int | None:
    """`em:tp:17` / `em:mkt:17:2` -> 17; not an exit-manager ref -> None."""
    parsed = parse(ref)
    if parsed is None or parsed.prefix != PREFIX_BY_OWNER[Owner.EXIT_MANAGER]:
        return None
    return parsed.number


def is_entry(ref: str | None) -> bool:
    return (ref or "").startswith(ENTRY_PREFIX)


def is_exit(ref: str | None) -> bool:
    return (ref or "").startswith(EXIT_PREFIX)


def is_liquidation(ref: str | None) -> bool:
    return (ref or "").startswith(LIQUIDATION_PREFIX)


def is_suite(ref: str | None) -> bool:
    """Sent by the suite (dt:, em:, op:), the connection test order excepted."""
    text = ref or ""
    return text.startswith(SUITE_PREFIXES) and not text.startswith(TEST_PREFIX)


def oca_pair_key(ref: str | None) -> str | None:
    """The exit manager's target and stop of one position form an OCA pair (only one can
    fill): both map to the same key; any other ref -> None."""
    parsed = parse(ref)
    if (parsed is None or parsed.prefix != PREFIX_BY_OWNER[Owner.EXIT_MANAGER]
            or parsed.purpose not in (TARGET, STOP) or parsed.number is None):
        return None
    return f"em-oca:{parsed.number}"


def oca_group(position_id: int, stamp_ms: int) -> str:
    """The OCA group name of one position's target and stop at the broker."""
    return f"em-oca-{position_id}-{stamp_ms}"
