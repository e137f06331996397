"""Operator tools' shared code: liquidation, reports, charts, console tables and script support."""
