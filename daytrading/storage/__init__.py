"""Private internals of `observability.py`, the one door to trading_history.db.

Nothing outside observability.py imports these modules: the rest of the suite (processes,
scripts, tests of other areas) reaches the database only through observability's API, so the
schema, the transaction discipline and the maintenance rules live in one place.
"""
