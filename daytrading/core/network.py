"""Where the suite may connect: loopback for the simulator, and the gateway ports IB uses.

Why in one place: sim mode must never reach a real gateway, paper mode must never sit on a
live-trading port, and both rules depend on the same two facts below. Which hosts are
loopback is the simulator's own rule (`ibsim.ctl.is_loopback_host`), used as is.
"""

from __future__ import annotations

from ibsim.ctl import is_loopback_host

IB_LIVE_PORTS = (4001, 7496)  # IB Gateway / TWS live-trading defaults
IB_PAPER_PORTS = (4002, 7497)  # IB Gateway / TWS paper-trading defaults
REAL_IB_PORTS = frozenset(IB_LIVE_PORTS + IB_PAPER_PORTS)  # ibsim never listens on these

__all__ = ["IB_LIVE_PORTS", "IB_PAPER_PORTS", "REAL_IB_PORTS", "is_loopback_host"]
