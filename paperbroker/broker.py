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
from paperbroker.fidelity import Fidelity
from paperbroker.matching import Matcher
from paperbroker.models import (
    AccountRecord,
    OrderClass,
    OrderRecord,
    OrderType,
    Side,
    Status,
    TimeInForce,
)
from paperbroker.options_expiry import parse_contract
from paperbroker.options_margin import OPTIONS_LEVEL
from paperbroker.options_orders import OptionsDesk
from paperbroker.orders import build_orders
from paperbroker.pending import PendingChanges
from paperbroker.prices import PriceEngine, SymbolParams
from paperbroker.rules import (
    check_buying_power,
    check_complex_prices,
    check_qty_available,
    check_wash_trade,
    order_cost,
)
from paperbroker.validation import OrderIntent, ReplaceIntent, check_option_increment

log = logging.getLogger(__name__)

# Statuses /_sim can park an order in, and the trade_updates event each streams (if any).
SETTABLE_STATUSES: dict[Status, str | None] = {
    Status.DONE_FOR_DAY: "done_for_day",
    Status.PENDING_REVIEW: None,
    Status.STOPPED: "stopped",
    Status.SUSPENDED: "suspended",
    Status.CALCULATED: "calculated",
    Status.PENDING_NEW: "pending_new",
    Status.ACCEPTED_FOR_BIDDING: None,
    Status.HELD: None,
}


def mleg_leg_refused(action: str) -> ApiError:
    """Return Alpaca's refusal to cancel or replace one leg of an mleg order (422 42210000).

    Source: alpaca-py examples/options/options-trading-mleg.ipynb, "Querying, Replacing, and
    Cancelling": ``{"code":42210000,"message":"cannot cancel individual legs of a mleg order"}``
    and the same with "replace". Only the whole (parent) order is cancelled or replaced.
    """
    return unprocessable(f"cannot {action} individual legs of a mleg order")


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
        fidelity: Fidelity | None = None,
        options_level: int = OPTIONS_LEVEL,
    ) -> None:
        self.clock = clock
        self.calendar = calendar
        self.prices = prices
        self.assets = assets
        self.multiplier = multiplier
        self.seed = seed
        self.fidelity = fidelity or Fidelity()
        self.listeners: list[Callable[[TradeUpdate], None]] = []
        self.book = Book(_new_account(cash, clock.now()), listeners=self.listeners)
        self.pending = PendingChanges(self)
        self.options = OptionsDesk(self)
        self.options_level = options_level  # the configured level: every reset restores it
        self.options.level = options_level
        self.matcher = self._new_matcher()
        self.last_processed = clock.now()
        self.min_step = timedelta(milliseconds=20)
        self.route_delay = 0.0

    def reset(self, cash: Decimal, prices: PriceEngine, book: Book | None = None) -> None:
        """Start over with a fresh (or restored) book and price engine; the clock is kept."""
        self.book = book or Book(_new_account(cash, self.clock.now()))
        self.book.listeners = self.listeners
        self.prices = prices
        self.pending.reset()
        self.options.reset()
        self.options.level = self.options_level
        old = self.matcher
        self.matcher = self._new_matcher()
        self.matcher.partial_fill_probability = old.partial_fill_probability
        self.matcher.partial_fill_delay = old.partial_fill_delay
        self.matcher.defer = old.defer
        self.last_processed = self.clock.now()

    def _new_matcher(self) -> Matcher:
        matcher = Matcher(
            self.book, self.prices, self.calendar, self.seed, self.clock.now, self.fidelity
        )
        matcher.on_aged = lambda order, when: self.pending.request_cancel(order, when, True)
        matcher.options = self.options
        return matcher

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
                covering = self.options.shares_covering_calls(asset.symbol)
                check_qty_available(
                    self.book, asset.symbol, intent.side, intent.qty, covering=covering
                )
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
        """Accept a replace (200 with the new order); it lands after `replace_delay_ms`."""
        old = self.order(order_id)
        now = self.sync()
        self.check_replaceable(old)
        if old.asset_class == "us_option" and change.limit_price is not None:
            check_option_increment(old.symbol, change.limit_price)
        return self.pending.request_replace(old, change, now)

    def check_replaceable(self, old: OrderRecord) -> None:
        """Refuse a replace of an mleg order or of one of its legs, before its body is read.

        A leg: Alpaca's own refusal (mleg_leg_refused). The whole order: alpaca-py's notebook
        examples/options/options-trading-mleg.ipynb ("Replace overall order") shows Alpaca
        accepting a replace of a whole mleg order; this broker refuses it, stricter than
        Alpaca (the rule: never friendlier): our code cancels and resubmits, and a refused
        replace is a path it must survive anyway. 422 42210000; the message is ours.
        """
        if old.order_class is not OrderClass.MLEG:
            return
        if old.parent_id is not None:
            raise mleg_leg_refused("replace")
        raise unprocessable("mleg orders cannot be replaced; cancel and resubmit")

    def relink(self, old: OrderRecord, new: OrderRecord) -> None:
        """Put a replacement in its predecessor's place in its complex order."""
        if old.parent_id is not None and old.parent_id in self.book.orders:
            parent = self.book.orders[old.parent_id]
            parent.leg_ids = [new.id if i == old.id else i for i in parent.leg_ids]
        for leg in self.book.legs_of(old):
            leg.parent_id = new.id
            if not leg.activated:
                leg.qty = new.qty
        if old.oco_peer_id is not None and old.oco_peer_id in self.book.orders:
            self.book.orders[old.oco_peer_id].oco_peer_id = new.id

    def cancel(self, order_id: str) -> OrderRecord:
        """Accept a cancel (204): the order goes pending_cancel, then canceled with its group."""
        order = self.order(order_id)
        now = self.sync()
        if order.order_class is OrderClass.MLEG and order.parent_id is not None:
            raise mleg_leg_refused("cancel")
        if not order.is_open:
            raise unprocessable(f'order is already in "{order.status.value}" state')
        self.pending.request_cancel(order, now)
        return order

    def set_options_level(self, level: int) -> None:
        """Set the account's options trading level (0-3) until the next reset."""
        if not 0 <= level <= 3:
            raise unprocessable("options level must be 0, 1, 2 or 3")
        self.options.level = level

    def cancel_all(self) -> list[dict[str, object]]:
        """Request a cancel of every open order; return (order, status) per order asked."""
        now = self.sync()
        cancelled: list[OrderRecord] = []
        for order in self.book.open_orders():
            if order.order_class is OrderClass.MLEG and order.parent_id is not None:
                continue  # an mleg leg is never cancelled alone (mleg_leg_refused): its parent is
            if order.is_open and order.status not in (
                Status.PENDING_CANCEL,
                Status.PENDING_REPLACE,
            ):
                self.pending.request_cancel(order, now)
                cancelled.append(order)
        return [{"order": o, "status": 200} for o in cancelled]

    def cancel_now(self, symbol: str | None = None) -> None:
        """Cancel open orders at once (DELETE /v2/positions?cancel_orders sequences it itself)."""
        now = self.sync()
        for order in self.book.open_orders(symbol):
            if order.is_open:
                order.pending = None
                self.matcher.cancel_group(order, now)

    def set_status(self, order_id: str, status: Status) -> OrderRecord:
        """Park an open order in a status Alpaca documents (streaming its event), or resume it."""
        order = self.order(order_id)
        now = self.sync()
        if not order.is_open:
            raise unprocessable(f'order is already in "{order.status.value}" state')
        if order.status in (Status.PENDING_CANCEL, Status.PENDING_REPLACE) or (
            order.replacement_in_flight
        ):
            raise unprocessable("a cancel or replace of this order is in flight")
        if status is Status.NEW:
            self.matcher.resume(order, now)
            return order
        if status not in SETTABLE_STATUSES:
            raise unprocessable(f'status "{status.value}" cannot be set; use cancel/expire/reject')
        if order.paused_from is None:
            order.paused_from = order.status
        order.status = status
        order.working = False
        order.updated_at = now
        event = SETTABLE_STATUSES[status]
        if event is not None:
            self.book.emit(event, order, now)
        return order

    def close_position(
        self, symbol_or_id: str, qty: Decimal | None = None, percentage: Decimal | None = None
    ) -> OrderRecord:
        """Submit a market order that closes all or part of a position."""
        if parse_contract(symbol_or_id) is not None:
            self.sync()
            if self.options.position_qty(symbol_or_id.upper()) == 0:
                raise position_not_found()
            if percentage is not None:
                # Alpaca "Close a position" (DELETE /v2/positions/{symbol_or_asset_id}): a
                # percentage sells a fraction only of fractionable assets, and options trade in
                # whole contracts ("Options Trading": no fractional options). Refusing the
                # parameter outright is stricter than rounding it down; the message is ours.
                raise unprocessable("percentage is not supported for option positions")
            return self.options.close_position(symbol_or_id.upper(), qty)
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
            self.cancel_now()
        results: list[tuple[str, int, object]] = []
        for symbol in [*self.book.positions, *self.options.positions]:
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
            if order.asset_class != "us_equity":
                continue  # options buying power counts option orders (options_margin.py)
            if self.book.position_qty(order.symbol) < 0:
                continue
            quote = self.prices.quote(order.symbol, when)
            cost = order_cost(order.side, order.remaining, None, order.limit_price, quote)
            replaces = order.replaces if order.replacement_in_flight else None
            old = self.book.orders.get(replaces) if replaces is not None else None
            if old is not None:
                # Being replaced: the larger of the two orders counts (replace-order reference).
                before = order_cost(old.side, old.remaining, None, old.limit_price, quote)
                cost = max(ZERO, cost - before)
            reserved += cost
        return reserved

    def buying_power(self, when: datetime) -> Decimal:
        """Return Reg-T style buying power net of open buy orders."""
        equity = self.matcher.equity(when)
        if self.options.positions:
            equity -= self.options.value(when)  # options are not marginable
        gross = ZERO
        for symbol, position in self.book.positions.items():
            gross += abs(position.qty) * self.prices.quote(symbol, when).mid
        margin = gross / 2
        power = max(ZERO, (equity - margin) * self.multiplier) - self.reserved_for_buys(when)
        if self.options.positions or self.options.has_open_orders():
            power -= self.options.cash_committed(when)
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
