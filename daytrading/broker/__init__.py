"""The broker adapter: the only package that imports ib_insync.

Import the contract types from here (they never need ib_insync); `IBClient` is loaded
lazily so pure code and tests can use the types and error codes without ib_insync.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from daytrading.broker.api import (
    AccountSnapshot,
    BrokerClient,
    BrokerPosition,
    CancelOutcome,
    CancelResult,
    ConnectionState,
    FillReport,
    OrderRequest,
    OrderStatus,
    OrderUpdate,
)
from daytrading.broker.codes import (
    AccountModeError,
    BrokerConnectError,
    BrokerRequestError,
    ClientIdInUseError,
    MarketDataError,
    OrderRejectedError,
    PacingError,
    classify,
)

if TYPE_CHECKING:
    from daytrading.broker.ib_client import IBClient

__all__ = [
    "AccountModeError",
    "AccountSnapshot",
    "BrokerClient",
    "BrokerConnectError",
    "BrokerPosition",
    "BrokerRequestError",
    "CancelOutcome",
    "CancelResult",
    "ClientIdInUseError",
    "ConnectionState",
    "FillReport",
    "IBClient",
    "MarketDataError",
    "OrderRejectedError",
    "OrderRequest",
    "OrderStatus",
    "OrderUpdate",
    "PacingError",
    "classify",
]


def __getattr__(name: str) -> Any:
    if name == "IBClient":
        from daytrading.broker.ib_client import IBClient

        return IBClient
    raise AttributeError(f"module 'daytrading.broker' has no attribute {name!r}")
