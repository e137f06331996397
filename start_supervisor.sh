#!/usr/bin/env bash
# Start the supervisor on Linux/macOS (Windows: start_supervisor.bat).
# Exit manager first, then the day trader; sleeps and wakes on the NYSE calendar.
# Usage: ./start_supervisor.sh [supervisor options], e.g. ./start_supervisor.sh --sim
# First run: creates .venv-daytrader and installs the suite; later runs reinstall only
# when pyproject.toml is newer than .venv-daytrader/.installed.
set -euo pipefail
cd "$(dirname "$0")"

# Never write or reuse stale bytecode: a leftover __pycache__ once ran old code for a
# whole trading day. Python compiles in memory instead (a second or two at start).
export PYTHONDONTWRITEBYTECODE=1
rm -rf __pycache__
for package in daytrading ibsim scripts; do
    if [ -d "$package" ]; then
        find "$package" -type d -name __pycache__ -prune -exec rm -rf {} +
    fi
done

VENV=.venv-daytrader
PY="$VENV/bin/python"
MARKER="$VENV/.installed"

if [ ! -x "$PY" ]; then
    echo "Creating the Python environment $VENV (first run only)..."
    if ! python3 -m venv "$VENV"; then
        echo "ERROR: could not create $VENV. Install Python 3.11 or newer with venv" >&2
        echo "       (Debian/Ubuntu: sudo apt install python3-venv), then run this again." >&2
        exit 1
    fi
fi

if [ ! -f "$MARKER" ] || [ pyproject.toml -nt "$MARKER" ]; then
    echo "Installing the suite into $VENV (pyproject.toml is new or changed)..."
    if ! "$PY" -m pip install --disable-pip-version-check -e .; then
        echo "ERROR: pip install failed, see the messages above. Check the internet" >&2
        echo "       connection and the Python version (3.11 or newer), then run this again." >&2
        exit 1
    fi
    touch "$MARKER"
fi

exec "$PY" supervisor.py "$@"
