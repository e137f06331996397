"""placeOrder (msg 3) decoding: the one request whose layout depends on the server version
and on variable-length groups (combo legs, delta-neutral, scale, hedge, algo, conditions).

Why walk every field: the message has no length fields of its own, so the only way to tell a
complete order from a truncated one, and to know where the version-dependent tail starts, is
to step through it exactly as ib_insync's client.placeOrder writes it.
"""

from __future__ import annotations

import math

from ibsim.wire.protocol import FieldReader, ProtocolError
from ibsim.wire.requests import PlaceOrderReq, read_contract

UNSET_DOUBLE = 1.7976931348623157e308

# Fields per order condition, type id -> field count after the type (ib_insync order.py).
_CONDITION_FIELDS = {1: 6, 3: 3, 4: 3, 5: 4, 6: 5, 7: 5}


def decode_place_order(r: FieldReader, msg_id: int, sv: int) -> PlaceOrderReq:
    order_id = r.int()
    contract = read_contract(r)
    r.skip(2)  # secIdType, secId
    action = r.str()
    qty_text = r.str()
    order_type = r.str()
    lmt_price = _lenient_float(r.str())
    aux_price = _lenient_float(r.str())
    tif = r.str()
    oca_group = r.str()
    account = r.str()
    r.skip(2)  # openClose, origin
    order_ref = r.str()
    transmit = r.bool()
    parent_id = r.int()
    r.skip(4)  # blockOrder, sweepToFill, displaySize, triggerMethod
    outside_rth = r.bool()
    r.skip(1)  # hidden
    extras: list[str] = []
    if contract.sec_type == "BAG":
        extras.append("combo legs")
        r.skip(8 * r.int())
        r.skip(r.int())
        r.skip(2 * r.int())
    r.skip(1)  # deprecated sharesAllocation
    r.skip(6)  # discretionaryAmt, goodAfterTime, goodTillDate, faGroup, faMethod, faPercentage
    if sv < 177:
        r.skip(1)  # faProfile
    r.skip(4)  # modelCode, shortSaleSlot, designatedLocation, exemptCode
    oca_type = r.int()
    r.skip(15)  # rule80A ... overridePercentageConstraints
    r.skip(2)  # volatility, volatilityType
    dn_type = r.str()
    r.skip(1)  # deltaNeutralAuxPrice
    if dn_type:
        extras.append("delta-neutral order")
        r.skip(8)
    r.skip(2)  # continuousUpdate, referencePriceType
    trail_stop_price = r.float()
    trailing_percent = r.float()
    r.skip(2)  # scaleInitLevelSize, scaleSubsLevelSize
    scale_increment = r.float()
    if scale_increment is not None and 0 < scale_increment < UNSET_DOUBLE:
        extras.append("scale order")
        r.skip(7)
    r.skip(3)  # scaleTable, activeStartTime, activeStopTime
    hedge_type = r.str()
    if hedge_type:
        extras.append("hedge order")
        r.skip(1)
    r.skip(4)  # optOutSmartRouting, clearingAccount, clearingIntent, notHeld
    if r.bool():
        extras.append("delta-neutral contract")
        r.skip(3)
    algo = r.str()
    if algo:
        extras.append(f"algo {algo}")
        r.skip(2 * r.int())
    r.skip(1)  # algoId
    what_if = r.bool()
    r.skip(4)  # orderMiscOptions, solicited, randomizeSize, randomizePrice
    if order_type == "PEG BENCH":
        r.skip(5)
    n_conditions = r.int()
    if n_conditions:
        extras.append("order conditions")
        for _ in range(n_conditions):
            cond_type = r.int()
            count = _CONDITION_FIELDS.get(cond_type)
            if count is None:
                raise ProtocolError(f"placeOrder: unknown order condition type {cond_type}")
            r.skip(count)
        r.skip(2)  # conditionsIgnoreRth, conditionsCancelOrder
    r.skip(7)  # adjustedOrderType ... adjustableTrailingUnit
    r.skip(3)  # extOperator, softDollarTier name, value
    r.skip(1)  # cashQty
    r.skip(4)  # mifid2 fields
    r.skip(4)  # dontUseAutoPriceForHedge, isOmsContainer, discretionaryUpToLimit, priceMgmt
    for min_sv in (158, 160, 162, 166, 169):  # duration, postToAts, autoCancelParent,
        if sv >= min_sv:  # advancedErrorOverride, manualOrderTime
            r.skip(1)
    if sv >= 170:
        if contract.exchange == "IBKRATS":
            r.skip(1)
        if order_type == "PEG BEST":
            r.skip(1)
            offset = r.float()
            if offset is not None and math.isinf(offset):
                r.skip(2)
        elif order_type == "PEG MID":
            r.skip(2)
    return PlaceOrderReq(
        msg_id, order_id=order_id, contract=contract, action=action, total_qty=_lenient_float(qty_text),
        order_type=order_type, lmt_price=lmt_price, aux_price=aux_price, tif=tif,
        oca_group=oca_group, account=account, order_ref=order_ref, transmit=transmit,
        parent_id=parent_id, outside_rth=outside_rth, oca_type=oca_type,
        trail_stop_price=trail_stop_price, trailing_percent=trailing_percent,
        what_if=what_if, extras=extras,
    )


def _lenient_float(text: str) -> float | None:
    """Order values: '' -> None (unset); text that is no number -> NaN, which the order
    validation rejects with error 201 and a reason instead of dropping the connection."""
    if text == "":
        return None
    if text == "Infinite":
        return math.inf
    try:
        return float(text)
    except ValueError:
        return math.nan
