"""What every long-running process needs: clock, database worker, heartbeat writer, stop handling, logging."""
