"""The paper broker core: Alpaca's trading operations over one account, driven by a SimClock."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import ROUND_DOWN, Decimal
from uuid import UUID, uuid4

from paperbroker.assets import Asset, make_asset
from paperbroker.book import ZERO, Book, TradeUpdate
from paperbroker.calendar import MarketCalendar
from paperbroker.clock import ClockMode, SimClock
from paperbroker.errors import (
    ApiError,
    duplicate_client_order_id,
    order_not_found,
    position_not_found,
    unprocessable,
)
from paperbroker.matching import Matcher
from paperbroker.models import AccountRecord, OrderRecord, OrderType, Side, Status, TimeInForce
from paperbroker.orders import build_orders, build_replacement
from paperbroker.prices import PriceEngine, SymbolParams
from paperbroker.rules import (
    check_buying_power,
    check_complex_prices,
    check_qty_available,
    check_wash_trade,
    order_cost,
)
from paperbroker.validation import OrderIntent, ReplaceIntent

log = logging.getLogger(__name__)

NOT_REPLACEABLE = frozenset(
    {Status.ACCEPTED, Status.PENDING_NEW, Status.PENDING_CANCEL, Status.PENDING_REPLACE}
)


class Broker:
    """One paper account: orders, positions, cash, prices and the clock they all follow."""

    def __init__(
        self,
        clock: SimClock,
        calendar: MarketCalendar,
        prices: PriceEngine,
        assets: dict[str, Asset],
        cash: Decimal,
        seed: int,
        multiplier: Decimal = Decimal(2),
    ) -> None:
        self.clock = clock
        self.calendar = calendar
        self.prices = prices
        self.assets = assets
        self.multiplier = multiplier
        self.seed = seed
        self.listeners: list[Callable[[TradeUpdate], None]] = []
        self.book = Book(_new_account(cash, clock.now()), listeners=self.listeners)
        self.matcher = Matcher(self.book, prices, calendar, seed, clock.now)
        self.last_processed = clock.now()
        self.min_step = timedelta(milliseconds=20)
        self.route_delay = 0.0

    def reset(self, cash: Decimal, prices: PriceEngine, book: Book | None = None) -> None:
        """Start over with a fresh (or restored) book and price engine; the clock is kept."""
        self.book = book or Book(_new_account(cash, self.clock.now()))
        self.book.listeners = self.listeners
        self.prices = prices
        old = self.matcher
        self.matcher = Matcher(self.book, prices, self.calendar, self.seed, self.clock.now)
        self.matcher.partial_fill_probability = old.partial_fill_probability
        self.matcher.partial_fill_delay = old.partial_fill_delay
        self.matcher.defer = old.defer
        self.last_processed = self.clock.now()

    # ---- time ---------------------------------------------------------------------------
    def sync(self) -> datetime:
        """Process everything that happened up to the clock's now and return now."""
        now = self.clock.now()
        if self.clock.mode is not ClockMode.MANUAL and now - self.last_processed < self.min_step:
            return now
        if now > self.last_processed:
            last, self.last_processed = self.last_processed, now
            self.matcher.catch_up(last, now)
        return now

    # ---- lookups ------------------------------------------------------------------------
    def asset(self, symbol_or_id: str) -> Asset | None:
        """Return the asset by symbol or asset id."""
        found = self.assets.get(symbol_or_id.upper())
        if found is not None:
            return found
        return next((a for a in self.assets.values() if str(a.id) == symbol_or_id.lower()), None)

    def order(self, order_id: str) -> OrderRecord:
        """Return an order by id or raise 404."""
        try:
            key = UUID(order_id)
        except ValueError as exc:
            raise order_not_found() from exc
        found = self.book.orders.get(key)
        if found is None:
            raise order_not_found()
        return found

    def order_by_client_id(self, client_order_id: str) -> OrderRecord:
        """Return the order first submitted with `client_order_id` or raise 404."""
        order_id = self.book.client_ids.get(client_order_id)
        if order_id is None:
            raise order_not_found()
        return self.book.orders[order_id]

    def add_symbol(self, symbol: str, price: Decimal | None = None) -> Asset:
        """Start pricing and trading a new symbol."""
        asset = make_asset(symbol, price)
        self.assets[asset.symbol] = asset
        if not self.prices.has(asset.symbol):
            self.prices.add_symbol(SymbolParams(symbol=asset.symbol, price=asset.seed_price))
        return asset

    # ---- orders -------------------------------------------------------------------------
    def submit(self, intent: OrderIntent, checks: bool = True) -> OrderRecord:
        """Accept a new order (and its legs) or raise the ApiError Alpaca would answer."""
        asset = self.assets.get(intent.symbol)
        if asset is None:
            raise unprocessable(f'asset "{intent.symbol}" not found', 40010001)
        now = self.sync()
        client_order_id = intent.client_order_id or str(uuid4())
        if client_order_id in self.book.client_ids:
            raise duplicate_client_order_id()
        quote = self.prices.quote(asset.symbol, now)
        check_complex_prices(intent, quote)
        if checks:
            if intent.qty is not None and intent.order_class.value in ("simple", "oco"):
                check_qty_available(self.book, asset.symbol, intent.side, intent.qty)
            check_wash_trade(self.book, intent)
            check_buying_power(self.book, intent, quote, self.buying_power(now))
        records = build_orders(intent, asset, client_order_id, now, self.calendar)
        for record in records:
            self.book.add(record)
        parent = records[0]
        log.info(
            "accepted order %s %s %s", parent.client_order_id, parent.side.value, parent.symbol
        )
        self.matcher.defer(self.route_delay, lambda: self.matcher.route(parent))
        return parent

    def replace(self, order_id: str, change: ReplaceIntent) -> OrderRecord:
        """Replace an open order with a new one carrying the requested changes."""
        old = self.order(order_id)
        now = self.sync()
        if not old.is_open:
            raise unprocessable(f'order is already in "{old.status.value}" state')
        if old.status in NOT_REPLACEABLE:
            raise unprocessable(f'order is not replaceable in "{old.status.value}" state')
        self._check_replace_fields(old, change)
        client_order_id = change.client_order_id or str(uuid4())
        if client_order_id in self.book.client_ids:
            raise duplicate_client_order_id()
        new = build_replacement(old, change, client_order_id, now)
        if old.activated and not (old.leg_ids and old.order_class.value in ("bracket", "oto")):
            check_qty_available(self.book, old.symbol, old.side, new.remaining, old.remaining)
        self.book.add(new)
        self._relink(old, new)
        old.replaced_by = new.id
        self.book.set_status(old, Status.REPLACED, now, "replaced")
        if new.status is Status.NEW:
            self.book.emit("new", new, now)
        self.matcher.evaluate(new, now)
        return new

    def _check_replace_fields(self, old: OrderRecord, change: ReplaceIntent) -> None:
        kind = old.type
        if change.limit_price is not None and kind not in (OrderType.LIMIT, OrderType.STOP_LIMIT):
            raise unprocessable("cannot replace limit_price of a non-limit order")
        if change.stop_price is not None and kind not in (OrderType.STOP, OrderType.STOP_LIMIT):
            raise unprocessable("cannot replace stop_price of a non-stop order")
        if change.trail is not None and kind is not OrderType.TRAILING_STOP:
            raise unprocessable("cannot replace trail of a non-trailing-stop order")
        if change.qty is not None and change.qty != change.qty.to_integral_value():
            raise unprocessable("qty must be a whole number for replace")

    def _relink(self, old: OrderRecord, new: OrderRecord) -> None:
        if old.parent_id is not None and old.parent_id in self.book.orders:
            parent = self.book.orders[old.parent_id]
            parent.leg_ids = [new.id if i == old.id else i for i in parent.leg_ids]
        for leg in self.book.legs_of(old):
            leg.parent_id = new.id
            if not leg.activated:
                leg.qty = new.qty
        if old.oco_peer_id is not None and old.oco_peer_id in self.book.orders:
            self.book.orders[old.oco_peer_id].oco_peer_id = new.id

    def cancel(self, order_id: str) -> None:
        """Cancel an open order or raise 404/422."""
        order = self.order(order_id)
        now = self.sync()
        if not order.is_open:
            raise unprocessable(f'order is already in "{order.status.value}" state')
        self.matcher.cancel(order, now)

    def cancel_all(self) -> list[dict[str, object]]:
        """Cancel every open order; return (order, status) per cancelled order."""
        now = self.sync()
        cancelled: list[OrderRecord] = []
        for order in self.book.open_orders():
            if order.is_open:
                self.matcher.cancel(order, now)
                cancelled.append(order)
        return [{"order": o, "status": 200} for o in cancelled]

    def close_position(
        self, symbol_or_id: str, qty: Decimal | None = None, percentage: Decimal | None = None
    ) -> OrderRecord:
        """Submit a market order that closes all or part of a position."""
        asset = self.asset(symbol_or_id)
        self.sync()
        position = self.book.positions.get(asset.symbol) if asset else None
        if position is None:
            raise position_not_found()
        size = abs(position.qty)
        if percentage is not None:
            if not 0 < percentage <= 100:
                raise unprocessable("percentage must be between 0 and 100")
            size = (size * percentage / 100).quantize(Decimal("0.000000001"), ROUND_DOWN)
        elif qty is not None:
            size = qty
        if size <= 0:
            raise unprocessable("qty must be > 0")
        side = Side.SELL if position.qty > 0 else Side.BUY
        intent = OrderIntent(
            symbol=position.symbol,
            side=side,
            type=OrderType.MARKET,
            time_in_force=TimeInForce.DAY,
            qty=size,
        )
        return self.submit(intent)

    def close_all(self, cancel_orders: bool) -> list[tuple[str, int, object]]:
        """Close every position; return (symbol, status, order or error body) per position."""
        if cancel_orders:
            self.cancel_all()
        results: list[tuple[str, int, object]] = []
        for symbol in list(self.book.positions):
            try:
                results.append((symbol, 200, self.close_position(symbol)))
            except ApiError as error:
                results.append((symbol, error.status, error))
        return results

    # ---- valuation ----------------------------------------------------------------------
    def reserved_for_buys(self, when: datetime) -> Decimal:
        """Return the cost of open orders that would add exposure."""
        reserved = ZERO
        for order in self.book.open_orders():
            if order.parent_id is not None or order.side is not Side.BUY:
                continue
            if self.book.position_qty(order.symbol) < 0:
                continue
            quote = self.prices.quote(order.symbol, when)
            reserved += order_cost(order.side, order.remaining, None, order.limit_price, quote)
        return reserved

    def buying_power(self, when: datetime) -> Decimal:
        """Return Reg-T style buying power net of open buy orders."""
        equity = self.matcher.equity(when)
        gross = ZERO
        for symbol, position in self.book.positions.items():
            gross += abs(position.qty) * self.prices.quote(symbol, when).mid
        margin = gross / 2
        power = max(ZERO, (equity - margin) * self.multiplier) - self.reserved_for_buys(when)
        return max(ZERO, power)

    def lastday_price(self, symbol: str, when: datetime) -> Decimal:
        """Return the close of the last session before the current (or next) one."""
        session = self.calendar.trading_session_for(when)
        anchor = session.open if session else when
        previous = self.calendar.previous_session(anchor - timedelta(seconds=1))
        at = previous.close if previous else when
        return self.prices.quote(symbol, min(at, when)).mid


def _new_account(cash: Decimal, now: datetime) -> AccountRecord:
    return AccountRecord(
        id=uuid4(),
        account_number=f"PA{uuid4().int % 10**10:010d}",
        created_at=now - timedelta(days=30),
        cash=cash,
        last_equity=cash,
    )
