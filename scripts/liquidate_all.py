"""EMERGENCY: cancel every working order and close every position, then halt new entries.

    python scripts/liquidate_all.py                 # everything at the broker (asks for YES)
    python scripts/liquidate_all.py --managed-only  # only the suite's positions
    python scripts/liquidate_all.py --dry-run       # show the plan, send nothing

It needs only IB Gateway/TWS and the database file: the supervisor, exit manager and day
trader may be dead or hung. It uses its own client id (broker.scripts_client_id, 90), sends
reqGlobalCancel (the only way to cancel the exit manager's resting orders from another
client id), waits until no order is working, sells what is still held, records the fills and
closes the suite's rows with reason LIQUIDATED. Entries stay halted afterwards; resume with
`python scripts/ctl.py unhalt`. Exit code 0: flat; 1: refused, failed or not flat; 2: bad
configuration.
"""

from __future__ import annotations

import sys

from daytrading.operations.liquidation_cli import main

if __name__ == "__main__":
    sys.exit(main(description=__doc__.split("\n\n")[0]))
