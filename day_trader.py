"""day_trader: placeholder entry point until its issue lands (prints --help, exits cleanly)."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="day_trader.py", description="day_trader of the day-trading suite (not yet implemented).")
    parser.parse_args(argv)
    print("day_trader.py is not implemented yet in this build.", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
