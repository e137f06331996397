"""IB error codes grouped by the reaction they need, and the broker's typed exceptions.

TWS reports everything (fills refused, farms reconnecting, pacing, "order cancelled") as
`error(reqId, code, message)`. Callers must never branch on message text, so this module
maps each code to one of the suite's reactions (errors.py): retry (TransientError), stop and
alert (OperationalError), refuse to start (ConfigError), or nothing at all (informational).

Sources: https://interactivebrokers.github.io/tws-api/message_codes.html and ib_insync's own
warning list (wrapper.py). Sets may overlap; `classify` checks them in a fixed priority order.
"""

from __future__ import annotations

from daytrading.core.errors import ConfigError, OperationalError, SuiteError, TransientError

# --- code groups -------------------------------------------------------------------------

#: Connectivity between the gateway and IB's servers came back (1101: data lost, resubscribe;
#: 1102: data kept). Not errors: they trigger a resync.
RESTORED: frozenset[int] = frozenset({1101, 1102})

#: The API socket or the gateway's link to IB is down or unusable. Retry with backoff.
#: 326 (client id in use) is here too; it has its own exception because the fix differs.
CONNECTIVITY: frozenset[int] = frozenset(
    {
        326,  # unable to connect: client id already in use
        502,  # couldn't connect to TWS (API disabled / wrong port)
        504,  # not connected
        507,  # bad message length / socket I/O error
        1100,  # connectivity between IB and TWS lost
        1300,  # TWS socket port reset; reconnect on the new port
        2110,  # connectivity between TWS and server broken, restored automatically
        *RESTORED,
    }
)

#: The gateway refused an order or an order action. Retrying the same order will not help.
REJECTIONS: frozenset[int] = frozenset(
    {
        103,  # duplicate order id
        104,  # can't modify a filled order
        105,  # modified order does not match the original
        106,  # can't transmit order id
        107,  # cannot transmit incomplete order
        109,  # price out of range
        110,  # price does not conform to the minimum price variation (ib_insync: "warning")
        111,  # tif and order type incompatible
        113,  # tif should be DAY for MOC/LOC
        135,  # can't find order with that id
        136,  # order cannot be cancelled
        161,  # cancel attempted when order is not in a cancellable state
        200,  # no security definition found (order context)
        201,  # order rejected - reason: ...
        203,  # security not available/allowed for this account
        383,  # size exceeds the limit
        387,  # unsupported order type for this exchange and security type
        388,  # order size smaller than the minimum
        463,  # invalid order type
        10006,  # missing parent order
        10147,  # order id to cancel not found
        10148,  # order id to cancel cannot be cancelled (state: Filled ...)
        10149,  # invalid order id to cancel
    }
)

#: Subset of REJECTIONS that refuse a *cancel* request: the order may well be filled already.
CANCEL_REJECTIONS: frozenset[int] = frozenset({135, 136, 161, 10147, 10148, 10149})

#: Too many requests: wait and retry later.
PACING: frozenset[int] = frozenset(
    {
        100,  # max rate of messages per second exceeded
        162,  # historical market data service error (pacing violation, query cancelled)
        366,  # no historical data query found for ticker id (usually after a pacing cancel)
        420,  # invalid real-time query / pacing violation
    }
)

#: Market data permissions and limits: fixed by configuration (subscriptions, data type).
DATA: frozenset[int] = frozenset(
    {
        101,  # max number of tickers reached
        300,  # can't find EId with ticker id
        309,  # max number of market depth requests
        321,  # error validating request
        354,  # requested market data is not subscribed
        10089,  # requested market data requires an additional API subscription
        10090,  # part of the requested market data is not subscribed
        10167,  # delayed market data is displayed (informational, see WARNINGS)
        10168,  # not subscribed and delayed market data is not enabled
        10197,  # no market data during a competing live session
    }
)

#: Informational: log, no reaction. 202 confirms a cancel (an unsolicited 202 right after
#: placing means a rejection; orders.py handles that case from the order's own state).
WARNINGS: frozenset[int] = frozenset(
    {165, 202, 399, 404, 434, 492, 10167, 10090, *range(2100, 2200)} - {2110}
)

#: Codes whose condition clears by itself (competing session logs out, farms reconnect).
_TRANSIENT_DATA: frozenset[int] = frozenset({10197})


# --- typed exceptions ---------------------------------------------------------------------


class _CodedError(SuiteError):
    """Carries the IB error code (or None when the adapter itself raised it)."""

    def __init__(self, message: str, *, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class BrokerConnectError(_CodedError, TransientError):
    """The gateway could not be reached or the connection is down; retry with backoff."""


class ClientIdInUseError(_CodedError, OperationalError):
    """Error 326 persisted after bounded retries: another process holds this client id.

    Operational (not transient): we already retried through the usual stale-session window,
    so a human has to stop the other process or change the configured client id.
    """

    def __init__(self, message: str, *, client_id: int | None = None, code: int | None = 326) -> None:
        super().__init__(message, code=code)
        self.client_id = client_id


class AccountModeError(_CodedError, ConfigError):
    """The connected account does not match the configured mode (paper/live/sim)."""


class OrderRejectedError(_CodedError, OperationalError):
    """The broker (or the adapter's own validation, code None) refused an order."""

    def __init__(
        self, message: str, *, code: int | None = None, order_ref: str = "", order_id: int = 0
    ) -> None:
        super().__init__(message, code=code)
        self.order_ref = order_ref
        self.order_id = order_id


class PacingError(_CodedError, TransientError):
    """IB pacing limits hit (or the local pacing queue would wait too long); retry later."""


class MarketDataError(_CodedError, ConfigError):
    """Market data not permitted (no subscription / wrong market data type)."""


class TransientMarketDataError(_CodedError, TransientError):
    """Market data unavailable for a while (e.g. a competing live session)."""


class BrokerRequestError(_CodedError, OperationalError):
    """Any other broker error code: unknown reaction, so stop and alert."""


# --- classification -------------------------------------------------------------------------


def is_warning(code: int) -> bool:
    """True for informational codes that need no reaction (2104 farm OK, 202 cancelled ...)."""
    return code in WARNINGS or code in RESTORED


def classify(code: int) -> type[SuiteError] | None:
    """The exception type for an IB error code, or None for informational codes.

    The returned type always subclasses TransientError, OperationalError or ConfigError, so
    callers can branch on the reaction: `issubclass(classify(c), TransientError)`.
    """
    if code in RESTORED:
        return None
    if code == 326:
        return ClientIdInUseError
    if code in CONNECTIVITY:
        return BrokerConnectError
    if code in PACING:
        return PacingError
    if code in WARNINGS:
        return None
    if code in _TRANSIENT_DATA:
        return TransientMarketDataError
    if code in DATA:
        return MarketDataError
    if code in REJECTIONS:
        return OrderRejectedError
    return BrokerRequestError


_FIXES: dict[type[SuiteError], str] = {
    BrokerConnectError: "check that IB Gateway/TWS is running and logged in; the adapter retries",
    ClientIdInUseError: "stop the other process using this client id or configure another one",
    PacingError: "too many requests; wait and retry (the adapter paces historical requests)",
    MarketDataError: (
        "subscribe to the market data in Account Management or set broker.market_data_type "
        "= 3 (delayed)"
    ),
    TransientMarketDataError: "market data is temporarily unavailable; it retries by itself",
    OrderRejectedError: "check the order's price, size, tif and the account's permissions",
    BrokerRequestError: "see the IB message code list; report it if it keeps happening",
}


def error_for(code: int, message: str, *, req_id: int | None = None) -> SuiteError | None:
    """Build the typed exception for a broker error (None for informational codes).

    Use as `raise error_for(code, msg) from cause` so the traceback keeps the origin.
    """
    kind = classify(code)
    if kind is None:
        return None
    where = f" (request {req_id})" if req_id is not None and req_id >= 0 else ""
    text = f"IB error {code}{where}: {message}. Fix: {_FIXES.get(kind, 'see the IB docs')}."
    if kind is ClientIdInUseError:
        return ClientIdInUseError(text, code=code)
    assert issubclass(kind, _CodedError)
    return kind(text, code=code)
