"""Database-specific refinements of the suite's error classes (re-exported by observability).

They subclass daytrading.core.errors.OperationalError because the reaction is the same: this is
not fixed by retrying; stop the affected work and alert. The subclass lets a caller that
expects a particular race (a late broker status, a duplicate close) catch exactly that.
"""

from __future__ import annotations

from daytrading.core.errors import OperationalError


class IntentNotFoundError(OperationalError):
    """No order_intents row has the given id."""


class IntentTransitionError(OperationalError):
    """A status change the intent state machine forbids (e.g. FILLED -> PENDING)."""


class OpenIntentExistsError(OperationalError):
    """An order for the same position and purpose is still open; a second was refused."""


class ClosedPositionConflictError(OperationalError):
    """The symbol already has a closed row for that New York date; the active row is kept."""


class DatabaseClosedError(OperationalError):
    """The Database object was closed; open a new one with get_database()."""
