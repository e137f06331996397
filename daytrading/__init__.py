"""Shared library of the day-trading suite: one small module per job.

The process modules at the top level (supervisor, exit_manager, day_trader, observability)
compose these pieces; `daytrading.broker` is the only code that imports ib_insync.
"""

__version__ = "0.1.0"
