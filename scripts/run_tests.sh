#!/usr/bin/env bash
# Set up (install the suite with its dev extra) and run the whole test suite.
# pytest exits 5 when it collected no test; that is a failure here, never a silent pass.
set -uo pipefail
cd "$(dirname "$0")/.."
python -m pip install -q --upgrade pip >/dev/null
python -m pip install -q -e ".[dev]" || { echo "install failed: see pip output above"; exit 1; }
python -m ruff check . || exit 1
python -m pytest -q -p no:cacheprovider "$@"
rc=$?
if [ "$rc" -eq 5 ]; then echo "pytest collected no tests: failing on purpose"; exit 1; fi
exit "$rc"
