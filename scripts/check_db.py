"""Health report of the suite database: integrity, WAL size, row counts, heartbeats, backups.

    python scripts/check_db.py [--db PATH | --sim] [--full] [--json]

Read-only: it never migrates or writes the file, so it is safe on a damaged database and
while the suite runs. --full runs PRAGMA integrity_check instead of quick_check.
Exit status: 0 healthy, 1 problems found (listed), 2 the file does not exist.
"""

from __future__ import annotations

import json
import sys

import observability
from daytrading.config.cli_flags import database_arguments, database_parser
from daytrading.core.errors import SuiteError


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def main(argv: list[str] | None = None) -> int:
    parser = database_parser("check_db.py", "Check the suite database (read-only): integrity, WAL size, row counts.")
    parser.add_argument("--full", action="store_true", help="full integrity_check (slower)")
    args, settings, db_path, sim = database_arguments(parser, argv)
    try:
        report = observability.inspect_database(db_path, sim=sim, full=args.full)
    except (SuiteError, ValueError) as exc:
        print(f"check_db: {exc}", file=sys.stderr)
        return 1
    code = 0 if report["ok"] else (2 if not report["exists"] else 1)
    if args.json:
        print(json.dumps(report, indent=2))
        return code
    print(f"database:        {report['path']}")
    if report["exists"]:
        print(f"size:            {_size(report['size_bytes'])}")
        print(f"WAL:             {_size(report['wal_bytes'])}")
        print(f"schema version:  {report['schema_version']} "
              f"(this suite: {report['code_schema_version']})")
        print(f"integrity:       {'ok' if not report['integrity'] else 'FAILED'}")
        for table, count in report["row_counts"].items():
            print(f"  {table:<18} {count:>9} rows")
        for beat in report["heartbeats"]:
            print(f"heartbeat:       {beat['process']} pid {beat['pid']} {beat['state']} "
                  f"at {beat['updated_at']}")
    print(f"newest backup:   {report['newest_backup'] or 'none'} "
          f"({report['backup_count']} kept)")
    for problem in report["problems"]:
        print(f"PROBLEM: {problem}")
    print("status:          " + ("ok" if report["ok"] else "PROBLEMS FOUND"))
    return code


if __name__ == "__main__":
    sys.exit(main())
