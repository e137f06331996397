"""`python -m ibsim`: see ibsim/cli.py."""

from __future__ import annotations

import sys

from ibsim.cli import main

if __name__ == "__main__":
    sys.exit(main())
