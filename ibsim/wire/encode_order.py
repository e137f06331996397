"""openOrder (5) and completedOrder (101): the two long, version-dependent messages.

Why tables: each layout is a list of (source, attribute, first SV, last SV) rows, where source
'o' is the Order, 'c' the Contract, 's' the OrderState and 'k' a constant. Attribute names are
the ib_insync attribute names, so a test can fill every row with a unique value and check that
the client's own decoder puts it in the attribute of the same name. Group counters (combo legs,
algo params, conditions ...) are constants: ibsim only reports simple single-leg stock orders.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache

from ibsim.model import ContractInfo, SimOrder
from ibsim.wire.encode import COMPLETED_ORDER, OPEN_ORDER, contract_block
from ibsim.wire.protocol import frame

_ANY = (0, 10_000)
C11_NAMES = (
    "conId", "symbol", "secType", "lastTradeDateOrContractMonth", "strike", "right",
    "multiplier", "exchange", "currency", "localSymbol", "tradingClass",
)

Row = tuple[str, str, int, int]


def _rows(source: str, names: str, lo: int = 0, hi: int = 10_000) -> list[Row]:
    return [(source, name, lo, hi) for name in names.split()]


def _k(value: str) -> Row:
    return ("k", value, *_ANY)


_OPEN_ORDER_ROWS: list[Row] = [
    ("o", "orderId", *_ANY),
    *[("c", n, *_ANY) for n in C11_NAMES],
    *_rows("o", "action totalQuantity orderType lmtPrice auxPrice tif ocaGroup account "
                "openClose origin orderRef clientId permId outsideRth hidden discretionaryAmt "
                "goodAfterTime"),
    _k(""),  # sharesAllocation (unused)
    *_rows("o", "faGroup faMethod faPercentage"),
    ("o", "faProfile", 0, 176),
    *_rows("o", "modelCode goodTillDate rule80A percentOffset settlingFirm shortSaleSlot "
                "designatedLocation exemptCode auctionStrategy startingPrice stockRefPrice "
                "delta stockRangeLower stockRangeUpper displaySize blockOrder sweepToFill "
                "allOrNone minQty ocaType eTradeOnly firmQuoteOnly nbboPriceCap parentId "
                "triggerMethod volatility volatilityType"),
    _k(""),  # deltaNeutralOrderType: empty, so no delta-neutral block follows
    *_rows("o", "deltaNeutralAuxPrice continuousUpdate referencePriceType trailStopPrice "
                "trailingPercent basisPoints basisPointsType"),
    ("c", "comboLegsDescrip", *_ANY),
    _k("0"), _k("0"), _k("0"),  # combo legs, order combo legs, smart combo routing params
    *_rows("o", "scaleInitLevelSize scaleSubsLevelSize"),
    _k(""),  # scalePriceIncrement: unset, so no scale block follows
    _k(""),  # hedgeType: empty, so no hedgeParam
    *_rows("o", "optOutSmartRouting clearingAccount clearingIntent notHeld"),
    _k("0"),  # delta-neutral contract present
    _k(""),  # algoStrategy: empty, so no algo params
    *_rows("o", "solicited whatIf"),
    *_rows("s", "status initMarginBefore maintMarginBefore equityWithLoanBefore "
                "initMarginChange maintMarginChange equityWithLoanChange initMarginAfter "
                "maintMarginAfter equityWithLoanAfter commission minCommission maxCommission "
                "commissionCurrency warningText"),
    *_rows("o", "randomizeSize randomizePrice"),
    _k("0"),  # conditions
    *_rows("o", "adjustedOrderType triggerPrice trailStopPrice lmtPriceOffset "
                "adjustedStopPrice adjustedStopLimitPrice adjustedTrailingAmount "
                "adjustableTrailingUnit softDollarTier.name softDollarTier.val "
                "softDollarTier.displayName cashQty dontUseAutoPriceForHedge isOmsContainer "
                "discretionaryUpToLimitPrice usePriceMgmtAlgo"),
    ("o", "duration", 159, 10_000),
    ("o", "postToAts", 160, 10_000),
    ("o", "autoCancelParent", 162, 10_000),
    *_rows("o", "minTradeQty minCompeteSize competeAgainstBestOffset midOffsetAtWhole "
                "midOffsetAtHalf", 170),
]

_COMPLETED_ORDER_ROWS: list[Row] = [
    *[("c", n, *_ANY) for n in C11_NAMES],
    *_rows("o", "action totalQuantity orderType lmtPrice auxPrice tif ocaGroup account "
                "openClose origin orderRef permId outsideRth hidden discretionaryAmt "
                "goodAfterTime faGroup faMethod faPercentage"),
    ("o", "faProfile", 0, 176),
    *_rows("o", "modelCode goodTillDate rule80A percentOffset settlingFirm shortSaleSlot "
                "designatedLocation exemptCode startingPrice stockRefPrice delta "
                "stockRangeLower stockRangeUpper displaySize sweepToFill allOrNone minQty "
                "ocaType triggerMethod volatility volatilityType"),
    _k(""),  # deltaNeutralOrderType
    *_rows("o", "deltaNeutralAuxPrice continuousUpdate referencePriceType trailStopPrice "
                "trailingPercent"),
    ("c", "comboLegsDescrip", *_ANY),
    _k("0"), _k("0"), _k("0"),
    *_rows("o", "scaleInitLevelSize scaleSubsLevelSize"),
    _k(""),  # scalePriceIncrement
    _k(""),  # hedgeType
    *_rows("o", "clearingAccount clearingIntent notHeld"),
    _k("0"),  # delta-neutral contract present
    _k(""),  # algoStrategy
    ("o", "solicited", *_ANY),
    ("s", "status", *_ANY),
    *_rows("o", "randomizeSize randomizePrice"),
    _k("0"),  # conditions
    *_rows("o", "trailStopPrice lmtPriceOffset cashQty dontUseAutoPriceForHedge "
                "isOmsContainer autoCancelDate filledQuantity refFuturesConId autoCancelParent "
                "shareholder imbalanceOnly routeMarketableToBbo parentPermId"),
    *_rows("s", "completedTime completedStatus"),
    *_rows("o", "minTradeQty minCompeteSize competeAgainstBestOffset midOffsetAtWhole "
                "midOffsetAtHalf", 170),
]


@cache
def open_order_layout(sv: int) -> tuple[tuple[str, str], ...]:
    """(source, name) per field after the message id, for server version `sv`."""
    return tuple((s, n) for s, n, lo, hi in _OPEN_ORDER_ROWS if lo <= sv <= hi)


@cache
def completed_order_layout(sv: int) -> tuple[tuple[str, str], ...]:
    return tuple((s, n) for s, n, lo, hi in _COMPLETED_ORDER_ROWS if lo <= sv <= hi)


def _values(
    layout: tuple[tuple[str, str], ...],
    contract: Mapping[str, object],
    order: Mapping[str, object],
    state: Mapping[str, object],
) -> list[object]:
    sources = {"c": contract, "o": order, "s": state}
    out: list[object] = []
    for source, name in layout:
        if source == "k":
            out.append(name)
        else:
            out.append(sources[source].get(name, ""))
    return out


def open_order_fields(
    sv: int, contract: Mapping[str, object], order: Mapping[str, object],
    state: Mapping[str, object],
) -> list[object]:
    return [OPEN_ORDER, *_values(open_order_layout(sv), contract, order, state)]


def completed_order_fields(
    sv: int, contract: Mapping[str, object], order: Mapping[str, object],
    state: Mapping[str, object],
) -> list[object]:
    return [COMPLETED_ORDER, *_values(completed_order_layout(sv), contract, order, state)]


# --- SimOrder -> mappings ------------------------------------------------------------------
def contract_mapping(info: ContractInfo) -> dict[str, object]:
    return dict(zip(C11_NAMES, contract_block(info), strict=True))


def order_mapping(o: SimOrder) -> dict[str, object]:
    """Only what ibsim knows; every other attribute goes out as '' (the client's default)."""
    return {
        "orderId": o.order_id, "clientId": o.client_id, "permId": o.perm_id,
        "action": o.action, "totalQuantity": o.total_qty, "orderType": o.order_type,
        "lmtPrice": o.lmt_price, "auxPrice": o.aux_price, "tif": o.tif,
        "ocaGroup": o.oca_group, "ocaType": o.oca_type, "account": o.account,
        "openClose": "O", "origin": 0, "orderRef": o.order_ref, "outsideRth": o.outside_rth,
        "hidden": False, "parentId": o.parent_id, "trailStopPrice": o.trail_stop_price,
        "trailingPercent": o.trailing_percent, "exemptCode": -1, "filledQuantity": o.filled,
    }


def state_mapping(o: SimOrder, completed_time: str = "") -> dict[str, object]:
    status = o.status
    state: dict[str, object] = {"status": status, "commissionCurrency": "USD"}
    if completed_time:
        state["completedTime"] = completed_time
        if status == "Filled":
            state["completedStatus"] = f"Filled Size: {o.filled:g}"
        else:
            state["completedStatus"] = status
    return state


def open_order(sv: int, info: ContractInfo, order: SimOrder, *, what_if: Mapping[str, object] | None = None) -> bytes:
    mapping = order_mapping(order)
    state = state_mapping(order)
    if what_if:
        mapping["whatIf"] = True
        state.update(what_if)
    return frame(open_order_fields(sv, contract_mapping(info), mapping, state))


def completed_order(sv: int, info: ContractInfo, order: SimOrder, completed_time: str) -> bytes:
    return frame(completed_order_fields(
        sv, contract_mapping(info), order_mapping(order), state_mapping(order, completed_time)
    ))
