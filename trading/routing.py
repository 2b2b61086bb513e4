"""Who owns a broker event: pure routing of order events and positions to trade workflows.

Our own orders carry the trade id in their client_order_id. Bracket/OCO legs do not (Alpaca
gives legs its own ids) and outside orders carry none: those go to every open trade in the
symbol, and each trade ignores orders it does not recognise.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from trading.broker_models import BrokerOrder, BrokerPosition, OrderSide, OrderType
from trading.ids import trade_id_of

_STOP_TYPES = frozenset({OrderType.STOP, OrderType.STOP_LIMIT})


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

    @property
    def digest(self) -> str:
        """What this trade would be told, fingerprinted (see view_digest)."""
        return view_digest(self.qty, self.open_orders)

    @property
    def covered(self) -> bool:
        """No long position, or an active sell stop covers all of it."""
        return (
            self.qty <= 0 or covering_stop_of(self.open_orders, self.symbol, self.qty) is not None
        )


def covering_stop_of(
    orders: Iterable[BrokerOrder], symbol: str, qty: Decimal
) -> BrokerOrder | None:
    """An active sell stop in the symbol whose unfilled quantity covers `qty`, if any."""
    candidates = [
        o
        for order in orders
        for o in (order, *order.legs)
        if o.symbol == symbol
        and o.side is OrderSide.SELL
        and o.type in _STOP_TYPES
        and o.is_active
        and (o.qty or Decimal(0)) - o.filled_qty >= qty
    ]
    # Prefer an exact cover (the guard would otherwise resize it), then the oldest.
    candidates.sort(key=lambda o: ((o.qty or Decimal(0)) - o.filled_qty != qty, o.created_at))
    return candidates[0] if candidates else None


def view_digest(qty: Decimal, open_orders: Iterable[BrokerOrder]) -> str:
    """A short fingerprint of a symbol's position and open orders: equal iff nothing changed."""
    orders = sorted((o.model_dump(mode="json") for o in open_orders), key=lambda o: o["id"])
    text = json.dumps([str(qty.normalize()), orders], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


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
