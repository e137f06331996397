"""Replace the suite database with a backup, refusing while the suite is running.

    python scripts/restore_db.py --from archive/trading_history-<stamp>.db [--db PATH | --sim]

Before touching anything it proves the backup healthy (integrity_check, schema not newer
than this suite) and checks the database's heartbeats: any suite process whose heartbeat PID
is still alive (psutil) makes it refuse; stop the supervisor first. The replaced file and its
-wal/-shm are moved into archive/ (never deleted), then a verified copy of the backup takes
its place. --force skips only the running-process check: use it solely when you are sure the
listed PIDs are not the suite. Exit status: 0 restored, 1 refused or failed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import observability
from daytrading.config.cli_flags import database_arguments, database_parser
from daytrading.core.errors import SuiteError


def main(argv: list[str] | None = None) -> int:
    parser = database_parser("restore_db.py", "Restore the suite database from a backup (refuses while suite processes run).")
    parser.add_argument("--from", dest="backup", type=Path, required=True,
                        help="the backup file to restore (see scripts/check_db.py)")
    parser.add_argument("--force", action="store_true",
                        help="restore even if heartbeat PIDs look alive (dangerous)")
    args, settings, db_path, sim = database_arguments(parser, argv)
    try:
        result = observability.restore_database(args.backup, db_path, sim=sim,
                                                force=args.force)
    except (SuiteError, ValueError) as exc:
        print(f"restore_db: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"restored {result['restored']} from {result['from']}")
    for moved in result["moved_aside"]:
        print(f"previous file kept as {moved}")
    for proc in result["ignored_running"]:
        print(f"warning: --force ignored running {proc['process']} (pid {proc['pid']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
