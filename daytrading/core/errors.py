"""Errors typed by the reaction they need.

Callers branch on the class, never on message text:
- TransientError: retry with backoff (a dropped socket, a busy database, HTTP 429).
- OperationalError: stop what you are doing for this item/process and alert a human.
- ConfigError: refuse to start; the message names the key, the bad value and the fix.

Every message a user sees says what went wrong and how to fix it.
"""

from __future__ import annotations


class SuiteError(Exception):
    """Base of every error the suite raises on purpose."""


class TransientError(SuiteError):
    """Worth retrying with backoff: the condition is expected to clear by itself."""


class OperationalError(SuiteError):
    """Not fixed by retrying: stop the affected work and alert the operator."""


class ConfigError(SuiteError):
    """Bad or contradictory configuration/CLI/file input: refuse to start."""


class DatabaseError(SuiteError):
    """Base for database problems that are not plain SQLite busy/locked retries."""


class SchemaTooNewError(DatabaseError, ConfigError):
    """The database file was written by a newer version of the suite."""


class CorruptDatabaseError(DatabaseError, OperationalError):
    """The integrity check failed; the file is left untouched."""


class PositionExistsError(OperationalError):
    """A second active row for a symbol was refused (atomic claim across processes)."""


class PositionNotFoundError(OperationalError):
    """An operation named a symbol that has no active row."""


# Database refinements: the reaction is an OperationalError's (not fixed by retrying); the
# subclass lets a caller that expects a particular race (a late broker status, a duplicate
# close) catch exactly that.


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
