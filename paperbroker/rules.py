"""Pre-trade checks Alpaca applies: share reservation, wash trades, buying power, bracket prices."""

from __future__ import annotations

from decimal import Decimal

from paperbroker.book import ZERO, Book
from paperbroker.errors import CODE_FORBIDDEN, ApiError, unprocessable, wash_trade
from paperbroker.models import OrderClass, OrderRecord, OrderType, Side
from paperbroker.prices import Quote
from paperbroker.ticks import CENT, fmt, fmt_money
from paperbroker.validation import OrderIntent

ALWAYS_WASH_TYPES = frozenset(
    {OrderType.MARKET, OrderType.STOP, OrderType.STOP_LIMIT, OrderType.TRAILING_STOP}
)


def check_qty_available(
    book: Book,
    symbol: str,
    side: Side,
    qty: Decimal,
    release: Decimal = ZERO,
    covering: Decimal = ZERO,
) -> None:
    """Refuse an order that would close more than the unreserved part of the position.

    `covering` is the shares that cover short calls (OptionsMargin.shares_covering_calls):
    they count as held for orders, so a sell cannot leave a covered call naked. Alpaca
    "Options Trading" levels table: a covered call needs the user to "own sufficient
    underlying shares", and no level allows an uncovered call - the stricter reading is that
    the shares stay held while the call is open (Alpaca's answer for shares held by orders).
    """
    position = book.position_qty(symbol)
    closing = (side is Side.SELL and position > 0) or (side is Side.BUY and position < 0)
    if not closing:
        return
    held = book.held_for_orders(symbol, side) - release
    if side is Side.SELL:
        held += min(covering, position)
    available = abs(position) - held
    if qty > available:
        raise ApiError(
            403,
            f"insufficient qty available for order (requested: {fmt(qty)}, "
            f"available: {fmt(available)})",
            CODE_FORBIDDEN,
            available=fmt(available),
            existing_qty=fmt(abs(position)),
            held_for_orders=fmt(held),
            symbol=symbol,
        )


def check_wash_trade(book: Book, intent: OrderIntent, ignore: OrderRecord | None = None) -> None:
    """Refuse a simple order that could execute against the account's own opposite order."""
    if intent.order_class is not OrderClass.SIMPLE or intent.type is OrderType.TRAILING_STOP:
        return
    for other in book.open_orders(intent.symbol):
        if other.side is intent.side or (ignore is not None and other.id == ignore.id):
            continue
        if intent.type in ALWAYS_WASH_TYPES or other.type in ALWAYS_WASH_TYPES:
            raise wash_trade()
        mine, theirs = intent.limit_price or ZERO, other.limit_price or ZERO
        buy_limit, sell_limit = (mine, theirs) if intent.side is Side.BUY else (theirs, mine)
        if buy_limit >= sell_limit:
            raise wash_trade()


def check_buying_power(
    book: Book, intent: OrderIntent, quote: Quote, buying_power: Decimal
) -> None:
    """Refuse an order that opens or grows exposure beyond the buying power."""
    position = book.position_qty(intent.symbol)
    opening = (intent.side is Side.BUY and position >= 0) or (
        intent.side is Side.SELL and position <= 0
    )
    if not opening:
        return
    cost = order_cost(intent.side, intent.qty, intent.notional, intent.limit_price, quote)
    if cost > buying_power:
        raise ApiError(
            403,
            "insufficient buying power",
            CODE_FORBIDDEN,
            buying_power=fmt_money(buying_power),
            cost_basis=fmt_money(cost),
        )


def order_cost(
    side: Side, qty: Decimal | None, notional: Decimal | None, limit: Decimal | None, quote: Quote
) -> Decimal:
    """Return what an order would cost at its limit, or at the far side of the quote."""
    if notional is not None:
        return notional
    price = limit if limit is not None else (quote.ask if side is Side.BUY else quote.bid)
    return (qty or ZERO) * price


def check_complex_prices(intent: OrderIntent, quote: Quote) -> None:
    """Check take-profit and stop-loss prices against the base price, as Alpaca does."""
    if intent.order_class is OrderClass.SIMPLE:
        return
    tp = intent.take_profit.limit_price if intent.take_profit else None
    sl = intent.stop_loss.stop_price if intent.stop_loss else None
    if intent.order_class is OrderClass.OCO:
        if tp is not None and sl is not None:
            wrong = tp <= sl if intent.side is Side.SELL else tp >= sl
            if wrong:
                raise unprocessable("take_profit.limit_price must be beyond stop_loss.stop_price")
        return
    base = intent.limit_price if intent.limit_price is not None else quote.mid
    if intent.type in (OrderType.STOP, OrderType.STOP_LIMIT) and intent.stop_price is not None:
        base = intent.stop_price
    buy = intent.side is Side.BUY
    if tp is not None:
        if buy and tp < base + CENT:
            raise unprocessable(
                f"take_profit.limit_price must be >= base_price + 0.01 ({fmt(base)})"
            )
        if not buy and tp > base - CENT:
            raise unprocessable(
                f"take_profit.limit_price must be <= base_price - 0.01 ({fmt(base)})"
            )
    if sl is not None:
        if buy and sl > base - CENT:
            raise unprocessable(f"stop_loss.stop_price must be <= base_price - 0.01 ({fmt(base)})")
        if not buy and sl < base + CENT:
            raise unprocessable(f"stop_loss.stop_price must be >= base_price + 0.01 ({fmt(base)})")
