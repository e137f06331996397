"""IB error codes map to the reaction they need (transient / operational / config / none)."""

from __future__ import annotations

import pytest

from daytrading.broker import codes
from daytrading.broker.codes import (
    AccountModeError,
    BrokerConnectError,
    BrokerRequestError,
    ClientIdInUseError,
    MarketDataError,
    OrderRejectedError,
    PacingError,
    classify,
    error_for,
    is_warning,
)
from daytrading.core.errors import ConfigError, OperationalError, TransientError


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (2104, None),  # market data farm connection is OK
        (2106, None),
        (2158, None),
        (2100, None),
        (2199, None),
        (202, None),  # order cancelled (confirmation)
        (399, None),
        (10167, None),  # delayed data displayed
        (1101, None),  # restored: resync, not an error
        (1102, None),
        (1100, BrokerConnectError),
        (1300, BrokerConnectError),
        (502, BrokerConnectError),
        (504, BrokerConnectError),
        (2110, BrokerConnectError),  # in the 2100s but a real outage
        (326, ClientIdInUseError),
        (201, OrderRejectedError),
        (203, OrderRejectedError),
        (110, OrderRejectedError),  # ib_insync calls it a warning; IB refuses the order
        (161, OrderRejectedError),
        (10147, OrderRejectedError),
        (10148, OrderRejectedError),
        (100, PacingError),
        (162, PacingError),
        (420, PacingError),
        (366, PacingError),
        (354, MarketDataError),
        (10089, MarketDataError),
        (10168, MarketDataError),
        (987654, BrokerRequestError),  # unknown: stop and alert
    ],
)
def test_classify_table(code: int, expected: type | None) -> None:
    assert classify(code) is expected


@pytest.mark.parametrize(
    ("code", "reaction"),
    [
        (1100, TransientError),
        (100, TransientError),
        (162, TransientError),
        (10197, TransientError),
        (201, OperationalError),
        (326, OperationalError),
        (31337, OperationalError),
        (354, ConfigError),
    ],
)
def test_every_error_type_has_one_reaction(code: int, reaction: type) -> None:
    kind = classify(code)
    assert kind is not None and issubclass(kind, reaction)
    others = {TransientError, OperationalError, ConfigError} - {reaction}
    assert not any(issubclass(kind, other) for other in others)


def test_groups_are_consistent() -> None:
    assert codes.CANCEL_REJECTIONS <= codes.REJECTIONS
    assert codes.RESTORED <= codes.CONNECTIVITY
    assert all(is_warning(c) for c in (2104, 2106, 2158, 202, 10167))
    assert not is_warning(2110) and not is_warning(201)
    # no code is both an informational warning and a rejection
    assert not (codes.WARNINGS & codes.REJECTIONS)


def test_error_for_builds_typed_error_with_code_and_fix() -> None:
    err = error_for(201, "Order rejected - reason: no shares", req_id=17)
    assert isinstance(err, OrderRejectedError)
    assert err.code == 201
    text = str(err)
    assert "201" in text and "request 17" in text and "Fix:" in text
    assert error_for(2104, "farm ok") is None


def test_error_for_is_raisable_from_a_cause() -> None:
    cause = RuntimeError("socket said no")
    with pytest.raises(PacingError) as info:
        err = error_for(162, "pacing violation")
        assert err is not None
        raise err from cause
    assert info.value.__cause__ is cause
    assert info.value.code == 162


def test_exception_attributes() -> None:
    rejected = OrderRejectedError("no", code=201, order_ref="em:tp:3", order_id=12)
    assert (rejected.code, rejected.order_ref, rejected.order_id) == (201, "em:tp:3", 12)
    busy = ClientIdInUseError("busy", client_id=10)
    assert busy.client_id == 10 and busy.code == 326
    assert issubclass(AccountModeError, ConfigError)
    assert issubclass(BrokerConnectError, TransientError)
