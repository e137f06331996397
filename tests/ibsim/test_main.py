"""`python -m ibsim` (cli.py): the ready line, flag errors (exit 2), the default port and a
clean stop that saves the state file."""

from __future__ import annotations

import re

import pytest

from ibsim.ctl import ctl_call
from ibsim.model import DEFAULT_PORT
from ibsim.testing import start_server
from tests.ibsim.support import (
    START,
    run_cli,
)


def test_ready_line_is_exact(sim) -> None:
    assert any(re.fullmatch(r"ibsim listening on 127\.0\.0\.1:\d+", line) for line in sim.output)
    assert sim.port not in (0, 4001, 4002, 7496, 7497)


# ------------------------------------------------------------------ the server command line
@pytest.mark.parametrize(("args", "message"), [
    (["--port", "7497"], "real Interactive Brokers port"),
    (["--port", "4001"], "real Interactive Brokers port"),
    (["--tape", "/no/such/tape.csv"], "no such file"),
    (["--scenario", "/no/such/scenario.toml"], "no such file"),
    (["--speed", "-1"], "must be > 0"),
    (["--start", "yesterday"], "not an ISO 8601"),
    (["--bogus-flag"], "unrecognized arguments"),
])
def test_bad_flags_exit_2(args: list[str], message: str) -> None:
    done = run_cli(*args)
    assert done.returncode == 2
    assert message in done.stderr
    assert "ibsim listening" not in done.stdout


def test_bad_tape_file_exits_2(tmp_path) -> None:
    tape = tmp_path / "tape.csv"
    tape.write_text("this,is\nnot,a tape\n")
    done = run_cli("--port", "0", "--tape", str(tape))
    assert done.returncode == 2 and "error" in done.stderr


def test_default_port_and_clean_stop_saves_state(tmp_path) -> None:
    assert DEFAULT_PORT == 7699
    state = tmp_path / "state.json"
    handle = start_server(start=START, symbols="AAPL", state_file=str(state))
    try:
        ctl_call(handle.port, "add-position", {"symbol": "AAPL", "quantity": 5, "avg_cost": 10})
        busy = run_cli("--port", str(handle.port), "--symbols", "AAPL")
        assert busy.returncode == 1 and "cannot listen" in busy.stderr
    finally:
        code = handle.stop()
    assert code == 0
    assert any("ibsim stopped" in line for line in handle.output)
    assert state.exists() and "AAPL" in state.read_text()
