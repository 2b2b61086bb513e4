"""Who owns a broker event: pure routing of order events and positions to trade workflows.

Our own orders carry the trade id in their client_order_id. Bracket/OCO legs do not (Alpaca
gives legs its own ids) and outside orders carry none: those go to every open trade in the
symbol, and each trade ignores orders it does not recognise.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from trading.broker_models import BrokerOrder, BrokerPosition
from trading.ids import trade_id_of


@dataclass(frozen=True)
class OpenTradeRef:
    """The little the router needs to know about an open trade."""

    trade_id: str
    symbol: str


@dataclass(frozen=True)
class PositionRoute:
    """The broker position (0 = flat) and open orders in a symbol, for one trade."""

    trade_id: str
    symbol: str
    qty: Decimal
    open_orders: tuple[BrokerOrder, ...]
    observed_at: datetime


def owners_of_order(order: BrokerOrder, open_trades: Iterable[OpenTradeRef]) -> list[str]:
    """Trade ids that should hear about this order."""
    own = trade_id_of(order.client_order_id)
    if own is not None:
        return [own]
    return sorted({t.trade_id for t in open_trades if t.symbol == order.symbol})


def route_positions(
    positions: Iterable[BrokerPosition],
    open_orders: Iterable[BrokerOrder],
    open_trades: Iterable[OpenTradeRef],
    observed_at: datetime,
) -> list[PositionRoute]:
    """One update per open trade: its symbol's position (0 when absent) and open orders.

    Only call with a successful snapshot: absence from it is a definitive answer.
    """
    qty_by_symbol = {p.symbol: p.qty for p in positions}
    orders_by_symbol: dict[str, list[BrokerOrder]] = {}
    for order in open_orders:
        orders_by_symbol.setdefault(order.symbol, []).append(order)
    return [
        PositionRoute(
            trade_id=trade.trade_id,
            symbol=trade.symbol,
            qty=qty_by_symbol.get(trade.symbol, Decimal(0)),
            open_orders=tuple(orders_by_symbol.get(trade.symbol, [])),
            observed_at=observed_at,
        )
        for trade in sorted(open_trades, key=lambda t: t.trade_id)
    ]


def untracked_positions(
    positions: Iterable[BrokerPosition], open_trades: Iterable[OpenTradeRef]
) -> list[BrokerPosition]:
    """Broker positions no open trade claims (candidates for adoption by reconcile)."""
    claimed = {t.symbol for t in open_trades}
    return [p for p in positions if p.qty != 0 and p.symbol not in claimed]
