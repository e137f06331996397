"""The supervisor's parts: child processes and restart policy, heartbeats, the trading-day schedule, instance lock, alerts, dashboard."""
