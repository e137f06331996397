"""Online backup of the suite database into archive/ (safe while the suite runs).

    python scripts/backup_db.py [--db PATH | --sim] [--dest DIR] [--keep N] [--checkpoint]

Uses the sqlite3 backup API through observability (the one door to the database), verifies
the copy, keeps the newest N backups (database.backup_keep, 14 by default) and prints the
new file's path. --checkpoint also runs wal_checkpoint(TRUNCATE) afterwards, as after the
close. Exit status: 0 done, 1 refused or failed (the message says why and what to do).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import observability
from daytrading.config.cli_flags import database_arguments, database_parser
from daytrading.core.errors import SuiteError


def main(argv: list[str] | None = None) -> int:
    parser = database_parser("backup_db.py", "Back up the suite database online into archive/.")
    parser.add_argument("--dest", type=Path, help="backup folder (default: archive/ beside it)")
    parser.add_argument("--keep", type=int, default=None,
                        help="how many backups of this database to keep "
                             "(default database.backup_keep = 14)")
    parser.add_argument("--checkpoint", action="store_true",
                        help="also run wal_checkpoint(TRUNCATE) after the backup")
    args, settings, db_path, sim = database_arguments(parser, argv)
    db_settings = settings.database
    if args.keep is not None:
        db_settings.backup_keep = args.keep
    try:
        with observability.get_database(db_path, sim=sim, settings=db_settings,
                                        process="backup_db") as db:
            path = db.backup(args.dest)
            checkpoint = db.checkpoint() if args.checkpoint else None
    except (SuiteError, ValueError) as exc:
        print(f"backup_db: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({"backup": str(path), "checkpoint": checkpoint}))
    else:
        print(f"backup written: {path}")
        if checkpoint is not None:
            print(f"checkpoint: {checkpoint}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
