"""Parse and check order request bodies the way Alpaca does, before any state is touched."""

from __future__ import annotations

import math
from decimal import Decimal, InvalidOperation
from typing import Any

from pydantic import BaseModel

from paperbroker.errors import CODE_INVALID, ApiError, bad_body, unprocessable
from paperbroker.models import OrderClass, OrderType, Side, TimeInForce
from paperbroker.options_expiry import parse_contract
from paperbroker.ticks import fmt, is_sub_penny

MAX_CLIENT_ORDER_ID = 128


class ExitSpec(BaseModel):
    """take_profit / stop_loss prices of a complex order."""

    limit_price: Decimal | None = None
    stop_price: Decimal | None = None


class OrderIntent(BaseModel):
    """A validated order request."""

    symbol: str
    side: Side
    type: OrderType
    time_in_force: TimeInForce
    order_class: OrderClass = OrderClass.SIMPLE
    qty: Decimal | None = None
    notional: Decimal | None = None
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    trail_price: Decimal | None = None
    trail_percent: Decimal | None = None
    extended_hours: bool = False
    client_order_id: str | None = None
    take_profit: ExitSpec | None = None
    stop_loss: ExitSpec | None = None


class ReplaceIntent(BaseModel):
    """A validated PATCH /v2/orders/{id} body."""

    qty: Decimal | None = None
    time_in_force: TimeInForce | None = None
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    trail: Decimal | None = None
    client_order_id: str | None = None


def _invalid(message: str) -> ApiError:
    return unprocessable(message, CODE_INVALID)


def _decimal(body: dict[str, Any], key: str) -> Decimal | None:
    raw = body.get(key)
    if raw is None or raw == "":
        return None
    if isinstance(raw, bool):
        raise _invalid(f"invalid {key}")
    try:
        value = Decimal(str(raw))
    except InvalidOperation as exc:
        raise _invalid(f"invalid {key}") from exc
    if not value.is_finite():
        raise _invalid(f"invalid {key}")
    return value


def _enum(body: dict[str, Any], key: str, enum: type[Any], default: Any = None) -> Any:
    raw = body.get(key)
    if raw is None or raw == "":
        if default is None:
            raise _invalid(f"{key} is required")
        return default
    try:
        return enum(str(raw).lower())
    except ValueError as exc:
        raise _invalid(f"invalid {key.replace('_', ' ')}: {raw}") from exc


def _check_tick(name: str, value: Decimal | None) -> None:
    if value is None:
        return
    if value <= 0:
        raise unprocessable(f"{name.split('.')[-1].replace('_', ' ')} must be > 0", CODE_INVALID)
    if is_sub_penny(value):
        raise unprocessable(
            f"invalid {name} {fmt(value)}. sub-penny increment does not fulfill "
            "minimum pricing criteria"
        )


def _exit_spec(body: dict[str, Any], key: str) -> ExitSpec | None:
    raw = body.get(key)
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise bad_body()
    return ExitSpec(
        limit_price=_decimal(raw, "limit_price"), stop_price=_decimal(raw, "stop_price")
    )


def parse_order(body: Any) -> OrderIntent:
    """Validate a POST /v2/orders body and return the intent, or raise ApiError."""
    if not isinstance(body, dict):
        raise bad_body()
    symbol = body.get("symbol")
    if not isinstance(symbol, str) or not symbol:
        raise _invalid("symbol is required")
    qty, notional = _decimal(body, "qty"), _decimal(body, "notional")
    if qty is not None and notional is not None:
        raise ApiError(400, "only one of qty or notional must be given", 40010000)
    if qty is None and notional is None:
        raise _invalid("qty or notional is required")
    if (qty is not None and qty <= 0) or (notional is not None and notional <= 0):
        raise _invalid("qty must be > 0")
    intent = OrderIntent(
        symbol=symbol.upper(),
        side=_enum(body, "side", Side),
        type=_enum(body, "type", OrderType),
        time_in_force=_enum(body, "time_in_force", TimeInForce),
        order_class=_enum(body, "order_class", OrderClass, OrderClass.SIMPLE),
        qty=qty,
        notional=notional,
        limit_price=_decimal(body, "limit_price"),
        stop_price=_decimal(body, "stop_price"),
        trail_price=_decimal(body, "trail_price"),
        trail_percent=_decimal(body, "trail_percent"),
        extended_hours=bool(body.get("extended_hours") or False),
        client_order_id=body.get("client_order_id") or None,
        take_profit=_exit_spec(body, "take_profit"),
        stop_loss=_exit_spec(body, "stop_loss"),
    )
    if intent.client_order_id is not None:
        if not isinstance(intent.client_order_id, str):
            raise bad_body()
        if len(intent.client_order_id) > MAX_CLIENT_ORDER_ID:
            raise _invalid("client_order_id must be no more than 128 characters")
    if intent.order_class is OrderClass.OCO and intent.limit_price is None and intent.take_profit:
        intent.limit_price = intent.take_profit.limit_price
    _check_prices(intent)
    _check_type_fields(intent)
    _check_class(intent)
    return intent


def _check_prices(intent: OrderIntent) -> None:
    _check_tick("limit_price", intent.limit_price)
    _check_tick("stop_price", intent.stop_price)
    if intent.take_profit is not None:
        _check_tick("take_profit.limit_price", intent.take_profit.limit_price)
    if intent.stop_loss is not None:
        _check_tick("stop_loss.stop_price", intent.stop_loss.stop_price)
        _check_tick("stop_loss.limit_price", intent.stop_loss.limit_price)
    if intent.trail_price is not None and intent.trail_price <= 0:
        raise _invalid("trail_price must be > 0")
    if intent.trail_percent is not None and intent.trail_percent <= 0:
        raise _invalid("trail_percent must be > 0")


def _check_type_fields(intent: OrderIntent) -> None:
    kind = intent.type
    has_limit, has_stop = intent.limit_price is not None, intent.stop_price is not None
    has_trail = intent.trail_price is not None or intent.trail_percent is not None
    if kind is OrderType.MARKET and (has_limit or has_stop or has_trail):
        raise _invalid("market orders require no stop or limit price")
    if kind in (OrderType.LIMIT, OrderType.STOP_LIMIT) and not has_limit:
        raise _invalid(f"{kind.value.replace('_', ' ')} orders require a limit price")
    if kind in (OrderType.STOP, OrderType.STOP_LIMIT) and not has_stop:
        raise _invalid(f"{kind.value.replace('_', ' ')} orders require a stop price")
    if kind is OrderType.LIMIT and has_stop:
        raise _invalid("limit orders require no stop price")
    if kind is OrderType.STOP and has_limit:
        raise _invalid("stop orders require no limit price")
    if kind is OrderType.TRAILING_STOP:
        if (intent.trail_price is None) == (intent.trail_percent is None):
            raise _invalid(
                "trailing stop orders require exactly one of trail_price or trail_percent"
            )
        if intent.time_in_force not in (TimeInForce.DAY, TimeInForce.GTC):
            raise _invalid("trailing stop orders must be DAY or GTC")
    tif = intent.time_in_force
    if tif in (TimeInForce.OPG, TimeInForce.CLS, TimeInForce.IOC, TimeInForce.FOK) and kind not in (
        OrderType.MARKET,
        OrderType.LIMIT,
    ):
        raise _invalid(f"{tif.value} orders must be market or limit orders")
    if intent.extended_hours and (kind is not OrderType.LIMIT or tif is not TimeInForce.DAY):
        raise _invalid("extended hours order must be DAY limit orders")
    fractional = intent.notional is not None or (
        intent.qty is not None and intent.qty != intent.qty.to_integral_value()
    )
    if fractional and (kind is not OrderType.MARKET or tif is not TimeInForce.DAY):
        raise _invalid("fractional orders must be DAY market orders")
    if fractional and intent.order_class is not OrderClass.SIMPLE:
        raise _invalid("fractional orders must be simple orders")


def _check_class(intent: OrderIntent) -> None:
    cls = intent.order_class
    if cls is OrderClass.SIMPLE:
        return
    if intent.time_in_force not in (TimeInForce.DAY, TimeInForce.GTC):
        raise _invalid(f"{cls.value} orders must be DAY or GTC")
    if intent.extended_hours:
        raise _invalid(f"extended hours is not supported for {cls.value} orders")
    if intent.type is OrderType.TRAILING_STOP:
        raise _invalid(f"trailing stop orders are not supported for {cls.value} orders")
    tp, sl = intent.take_profit, intent.stop_loss
    if tp is not None and tp.limit_price is None:
        raise _invalid("take_profit.limit_price is required")
    if sl is not None and sl.stop_price is None:
        raise _invalid("stop_loss.stop_price is required")
    if cls in (OrderClass.BRACKET, OrderClass.OCO) and (tp is None or sl is None):
        raise _invalid(f"{cls.value} orders require take_profit and stop_loss")
    if cls is OrderClass.OTO and (tp is None) == (sl is None):
        raise _invalid("oto orders require exactly one of take_profit or stop_loss")
    if cls is OrderClass.OCO and intent.type is not OrderType.LIMIT:
        raise _invalid("oco orders must be limit orders")


def parse_replace(body: Any) -> ReplaceIntent:
    """Validate a PATCH /v2/orders/{id} body."""
    if not isinstance(body, dict):
        raise bad_body()
    tif = body.get("time_in_force")
    intent = ReplaceIntent(
        qty=_decimal(body, "qty"),
        time_in_force=_enum(body, "time_in_force", TimeInForce) if tif else None,
        limit_price=_decimal(body, "limit_price"),
        stop_price=_decimal(body, "stop_price"),
        trail=_decimal(body, "trail"),
        client_order_id=body.get("client_order_id") or None,
    )
    if intent.qty is not None and intent.qty <= 0:
        raise _invalid("qty must be > 0")
    _check_tick("limit_price", intent.limit_price)
    _check_tick("stop_price", intent.stop_price)
    if intent.client_order_id is not None and len(intent.client_order_id) > MAX_CLIENT_ORDER_ID:
        raise _invalid("client_order_id must be no more than 128 characters")
    return intent


# ---- options (paperbroker/options_orders.py) ---------------------------------------------
# Alpaca "Options Trading": market or limit, time_in_force day, whole contracts, no extended
# hours; mleg orders have 2-4 legs with distinct symbols and ratio_qty in simplest form, and
# a net limit_price (positive: debit paid, negative: credit received). alpaca-py 0.44
# OptionLegRequest: a leg names side and/or position_intent.
MAX_OPTION_LEGS = 4
POSITION_INTENTS = ("buy_to_open", "buy_to_close", "sell_to_open", "sell_to_close")


class OptionLeg(BaseModel):
    """One leg: contract, side, ratio to the order's qty, position intent."""

    symbol: str
    side: Side
    ratio_qty: int
    position_intent: str | None = None


class OptionOrderIntent(BaseModel):
    """A validated option order: single-leg (one leg, ratio 1) or mleg."""

    order_class: OrderClass
    type: OrderType
    time_in_force: TimeInForce
    qty: Decimal
    legs: list[OptionLeg]
    limit_price: Decimal | None = None
    client_order_id: str | None = None


def is_option_order(body: Any) -> bool:
    """Return True for a POST /v2/orders body that is an option order (mleg or an OCC symbol)."""
    if not isinstance(body, dict):
        return False
    if str(body.get("order_class") or "").lower() == OrderClass.MLEG.value:
        return True
    symbol = body.get("symbol")
    return isinstance(symbol, str) and parse_contract(symbol) is not None


def _side_of(raw: Any, intent: str | None) -> Side:
    if raw:
        try:
            side = Side(str(raw).lower())
        except ValueError as exc:
            raise _invalid(f"invalid side: {raw}") from exc
        if intent is not None and not intent.startswith(side.value):
            raise _invalid(f"position_intent {intent} does not match side {side.value}")
        return side
    if intent is None:
        raise _invalid("side is required")
    return Side.BUY if intent.startswith("buy") else Side.SELL


def _intent_of(raw: Any) -> str | None:
    if raw is None or raw == "":
        return None
    intent = str(raw).lower()
    if intent not in POSITION_INTENTS:
        raise _invalid(f"invalid position_intent: {raw}")
    return intent


def _leg(raw: Any) -> OptionLeg:
    if not isinstance(raw, dict):
        raise bad_body()
    symbol = raw.get("symbol")
    if not isinstance(symbol, str) or parse_contract(symbol) is None:
        raise _invalid(f"invalid leg: symbol {symbol!r} is not an option contract")
    ratio = _decimal(raw, "ratio_qty")
    if ratio is None or ratio <= 0 or ratio != ratio.to_integral_value():
        raise _invalid(f"invalid leg: ratio_qty of {symbol} must be a positive whole number")
    intent = _intent_of(raw.get("position_intent"))
    return OptionLeg(
        symbol=symbol.upper(),
        side=_side_of(raw.get("side"), intent),
        ratio_qty=int(ratio),
        position_intent=intent,
    )


def parse_option_order(body: Any) -> OptionOrderIntent:
    """Validate an option order body as Alpaca does, or raise its ApiError."""
    if not isinstance(body, dict):
        raise bad_body()
    mleg = str(body.get("order_class") or "").lower() == OrderClass.MLEG.value
    qty = _decimal(body, "qty")
    if body.get("notional") not in (None, ""):
        raise _invalid("notional is not supported for options orders")
    if qty is None or qty <= 0:
        raise _invalid("qty must be > 0")
    if qty != qty.to_integral_value():
        raise _invalid("qty must be a whole number of contracts for options orders")
    kind = str(body.get("type") or "").lower()
    if kind not in (OrderType.MARKET.value, OrderType.LIMIT.value):
        raise _invalid("options orders must be market or limit orders")
    tif = str(body.get("time_in_force") or "").lower()
    if tif != TimeInForce.DAY.value:
        raise _invalid("options orders must be DAY orders (time_in_force: day)")
    if body.get("extended_hours"):
        raise _invalid("extended hours is not supported for options orders")
    if body.get("take_profit") or body.get("stop_loss"):
        raise _invalid("options orders do not support take_profit or stop_loss")
    limit = _decimal(body, "limit_price")
    if kind == OrderType.LIMIT.value and limit is None:
        raise _invalid("limit orders require a limit price")
    if kind == OrderType.MARKET.value and limit is not None:
        raise _invalid("market orders require no limit price")
    if limit is not None and limit != limit.quantize(Decimal("0.01")):
        raise unprocessable(
            f"invalid limit_price {fmt(limit)}. sub-penny increment does not fulfill "
            "minimum pricing criteria"
        )
    if mleg:
        legs = _mleg_legs(body)
    else:
        cls = str(body.get("order_class") or "simple").lower()
        if cls != OrderClass.SIMPLE.value:
            raise _invalid(f"{cls} orders are not supported for options")
        if limit is not None and limit <= 0:
            raise _invalid("limit price must be > 0")
        if limit is not None:
            check_option_increment(str(body.get("symbol") or ""), limit)
        intent = _intent_of(body.get("position_intent"))
        legs = [
            OptionLeg(
                symbol=str(body["symbol"]).upper(),
                side=_side_of(body.get("side"), intent),
                ratio_qty=1,
                position_intent=intent,
            )
        ]
    client_order_id = body.get("client_order_id") or None
    if client_order_id is not None and (not isinstance(client_order_id, str)):
        raise bad_body()
    if client_order_id is not None and len(client_order_id) > 128:
        raise _invalid("client_order_id must be no more than 128 characters")
    return OptionOrderIntent(
        order_class=OrderClass.MLEG if mleg else OrderClass.SIMPLE,
        type=OrderType(kind),
        time_in_force=TimeInForce.DAY,
        qty=qty,
        legs=legs,
        limit_price=limit,
        client_order_id=client_order_id,
    )


# Alpaca support "Options pricing increments and options order handling"
# (alpaca.markets/support/options-pricing-increments-and-options-order-handling): Penny
# Program classes trade in $0.01 below $3.00 and $0.05 at or above; SPY, QQQ and IWM in $0.01
# at any price; other classes in $0.05 below $3.00 and $0.10 at or above. An order off those
# increments "will be rejected" unless routed to the Nasdaq Options Market: the stricter
# reading refuses it. Alpaca's body for it is undocumented: 422 42210000 (its generic
# unprocessable code, as for sub-penny prices) with our message naming the increment.
# Which classes are in the Penny Program Alpaca answers per contract (`ppind` on GET
# /v2/options/contracts; alpaca-py 0.44's OptionContract has no such field, so this broker
# does not answer it). Every underlying of the default universe (assets.DEFAULT_UNIVERSE) is
# among the most actively traded option classes, which the Penny Interval Program lists
# (the top 363-425 classes by OCC cleared volume: BOX and MIAX program notices); any other
# symbol added to the broker is taken as a non-penny class, the stricter reading.
# Multi-leg (mleg) net prices stay on the cent: complex orders trade in $0.01 net increments
# (Alpaca "Options Level 3 Trading" examples price spreads to the cent).
PENNY_AT_ANY_PRICE = frozenset({"SPY", "QQQ", "IWM"})
PENNY_PROGRAM = frozenset(
    {"AAPL", "MSFT", "AMZN", "GOOGL", "META", "NVDA", "TSLA", "AMD", "JPM", "KO", "F"}
    | PENNY_AT_ANY_PRICE
)
PENNY_BREAK = Decimal(3)


def option_increment(underlying: str, price: Decimal) -> Decimal:
    """Return the price increment of a single-leg option order on `underlying` at `price`."""
    if underlying in PENNY_AT_ANY_PRICE:
        return Decimal("0.01")
    if underlying in PENNY_PROGRAM:
        return Decimal("0.01") if price < PENNY_BREAK else Decimal("0.05")
    return Decimal("0.05") if price < PENNY_BREAK else Decimal("0.10")


def check_option_increment(symbol: str, limit: Decimal) -> None:
    """Refuse a single-leg option limit price off its class's increment (422 42210000)."""
    contract = parse_contract(symbol)
    if contract is None:
        return  # not a contract: the order is refused as such elsewhere
    step = option_increment(contract.underlying, limit)
    if limit % step != 0:
        raise unprocessable(
            f"invalid limit_price {fmt(limit)}. {contract.underlying} options priced "
            f"{'below' if limit < PENNY_BREAK else 'at or above'} $3.00 trade in "
            f"${step:.2f} increments"
        )


def _mleg_legs(body: dict[str, Any]) -> list[OptionLeg]:
    raw = body.get("legs")
    if not isinstance(raw, list):
        raise _invalid("legs is required for mleg orders")
    if not 2 <= len(raw) <= MAX_OPTION_LEGS:
        raise _invalid("mleg orders must have between 2 and 4 legs")
    legs = [_leg(item) for item in raw]
    if len({leg.symbol for leg in legs}) != len(legs):
        raise _invalid("invalid legs: each leg must have a unique symbol")
    # Alpaca "Options Level 3 Trading" (docs.alpaca.markets/docs/options-level-3-trading): the
    # legs of a multi-leg order are on the same underlying security. Alpaca documents no code
    # or message for a mix: 42210000 is its generic unprocessable code; the text is ours.
    underlyings = {_underlying(leg.symbol) for leg in legs}
    if len(underlyings) != 1:
        raise unprocessable(
            "invalid legs: all legs of a mleg order must have the same underlying "
            f"(got {', '.join(sorted(underlyings))})"
        )
    # Alpaca "Options Level 3 Trading" (docs.alpaca.markets/docs/options-level-3-trading) and
    # the "Options Trading" order rules: leg ratios are given in simplest form (a 2:4 order is
    # a 1:2 order of twice the qty). We could not re-read that sentence in a searchable copy
    # of the page; refusing a reducible ratio is the stricter reading and loses no order.
    if math.gcd(*(leg.ratio_qty for leg in legs)) != 1:
        raise _invalid("invalid legs: ratio_qty must be in its simplest form")
    return legs


def _underlying(symbol: str) -> str:
    contract = parse_contract(symbol)
    return contract.underlying if contract is not None else symbol  # _leg parsed it already
