"""Close only the suite's positions opened TODAY (New York date), then halt new entries.

    python scripts/liquidate_today.py            # asks for YES
    python scripts/liquidate_today.py --dry-run  # show the plan, send nothing

Same procedure as liquidate_all.py (global cancel, wait, sell what is held, record, close
rows with reason LIQUIDATED), but positions entered on an earlier day and positions you hold
by hand are never sold. Note: reqGlobalCancel still cancels every working order (IB has no
way to cancel another client's orders one by one); the plan lists them before you confirm.
Exit code 0: flat; 1: refused, failed or not flat; 2: bad configuration.
"""

from __future__ import annotations

import sys

from daytrading.operations.liquidation_cli import main as liquidate_main


def main(argv: list[str] | None = None) -> int:
    return liquidate_main(argv, prog="liquidate_today.py", process="liquidate_today",
                          scope="today", description=__doc__.split("\n\n")[0])


if __name__ == "__main__":
    sys.exit(main())
