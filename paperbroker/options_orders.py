"""Option orders: request checks, single-leg and mleg (all-or-none) fills, closing positions.

`OptionsDesk` is the account's options desk inside one Broker: the orders below, on top of
exercise and expiry (options_exercise.py) and the positions' buying power and value
(options_margin.py).

Sources (the stricter reading where they differ):
* Alpaca "Options Trading" (docs.alpaca.markets/docs/options-trading): options orders are
  market or limit, ``time_in_force`` day only, whole contracts, no extended hours; levels
  0-3 (the account's level is configured: `required_level` below). Multi-leg orders (``order_class``
  ``mleg``) carry 2-4 legs with distinct symbols and a ``ratio_qty`` each (in simplest form);
  the parent's ``limit_price`` is the net price of one unit: positive is a net debit (paid),
  negative a net credit (received). The order fills as a whole or not at all (on the
  market; `/_sim/orders/{id}/fill` with a qty fills part of it, as Alpaca's orders may).
* alpaca-py 0.44 (``OptionLegRequest``, ``Order.legs``/``ratio_qty``/``position_intent``).
Messages Alpaca's docs do not spell out are this broker's own.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import uuid4

from paperbroker.book import PENDING_STATUSES
from paperbroker.errors import (
    CODE_FORBIDDEN,
    CODE_INVALID,
    ApiError,
    duplicate_client_order_id,
    unprocessable,
)
from paperbroker.models import (
    OptionPositionRecord,
    OrderClass,
    OrderRecord,
    OrderType,
    Side,
    Status,
    TimeInForce,
    after_fill,
)
from paperbroker.options_contracts import OptionUniverse, contract_id_for
from paperbroker.options_exercise import OptionsExercise
from paperbroker.options_expiry import CONTRACT_MULTIPLIER, Contract, parse_contract
from paperbroker.options_margin import ZERO, OptionQuoteLike, net_price
from paperbroker.serialize import option_position_json
from paperbroker.ticks import fmt, fmt_money
from paperbroker.validation import OptionLeg, OptionOrderIntent, parse_option_order


def options_not_enabled() -> ApiError:
    """Return the refusal for an account at options level 0."""
    return ApiError(403, "account is not authorized to trade options", CODE_FORBIDDEN)


LEVEL_STRATEGIES = {
    1: "covered calls and cash-secured puts",
    2: "buying calls and puts",
    3: "multi-leg (mleg) orders and spreads",
}


def required_level(order_class: OrderClass, legs: list[OptionLeg]) -> int:
    """Return the options level an order needs (its legs' position intents resolved).

    Alpaca "Options Trading" (docs.alpaca.markets/docs/options-trading), levels table, and
    alpaca-py TradeAccount ("0=disabled, 1=Covered Call/Cash-Secured Put, 2=Long Call/Put,
    3=Spreads/Straddles"): level 1 sells covered calls and cash-secured puts, level 2 adds
    buying calls and puts, level 3 adds spreads. Closing a position needs level 1. Every mleg
    order needs level 3, closing ones too: the stricter reading, as Alpaca's "Options Level 3
    Trading" page introduces multi-leg orders with level 3 and no level below lists them. A
    short call that nothing covers is refused at every level (options_margin.uncovered).
    """
    if order_class is OrderClass.MLEG:
        return 3
    if legs[0].position_intent == "buy_to_open":
        return 2
    return 1


def above_level(needed: int, level: int) -> ApiError:
    """Return the refusal of an order above the account's options level.

    Alpaca documents no code or message for it (none found in its docs, support pages or
    issue threads): 403 with its generic forbidden code 40310000; the text is ours.
    """
    return ApiError(
        403,
        f"account not eligible to trade this options order: {LEVEL_STRATEGIES[needed]} "
        f"need options trading level {needed} (account level {level})",
        CODE_FORBIDDEN,
    )


def marketable(kind: OrderType, limit: Decimal | None, net: Decimal) -> bool:
    """Return True when a net price is at or better than the limit (a market order always is)."""
    return kind is OrderType.MARKET or (limit is not None and net <= limit)


class OptionsDesk(OptionsExercise):
    """The account's option orders and positions, working inside one Broker."""

    # ---- orders ---------------------------------------------------------------------------
    def submit(self, intent: OptionOrderIntent) -> OrderRecord:
        """Accept an option order (parent first, then its legs) or raise Alpaca's refusal."""
        if self.level <= 0:
            raise options_not_enabled()
        now = self.broker.sync()
        for leg in intent.legs:
            self._contract(leg.symbol, now)
        client_order_id = intent.client_order_id or str(uuid4())
        if client_order_id in self.broker.book.client_ids:
            raise duplicate_client_order_id()
        legs = [self._with_intent(leg) for leg in intent.legs]
        needed = required_level(intent.order_class, legs)
        if needed > self.level:
            raise above_level(needed, self.level)
        self._check_closing(legs, intent.qty)
        cost = self.order_requirement(legs, intent, now)
        power = self.buying_power(now)
        if cost > power:
            raise ApiError(
                403,
                "insufficient options buying power",
                CODE_FORBIDDEN,
                buying_power=fmt_money(power),
                cost_basis=fmt_money(cost),
            )
        records = self._records(intent, legs, client_order_id, now)
        for record in records:
            self.broker.book.add(record)
        parent = records[0]
        matcher = self.broker.matcher
        matcher.defer(self.broker.route_delay, lambda: matcher.route(parent))
        return parent

    def _contract(self, symbol: str, now: datetime) -> Contract:
        contract = parse_contract(symbol)
        if contract is None or contract.underlying not in self.broker.assets:
            raise unprocessable(f'asset "{symbol}" not found', CODE_INVALID)
        session = self.broker.calendar.trading_session_for(now)
        today = session.day if session else now.date()
        if contract.expiry < today:
            raise unprocessable(f'asset "{symbol}" is not active', CODE_INVALID)
        # Only listed contracts trade (strike grid and expiries of options_contracts.py).
        if OptionUniverse(self.broker.prices, self.broker.calendar).lookup(symbol, now) is None:
            raise unprocessable(f'asset "{symbol}" not found', CODE_INVALID)
        return contract

    def _with_intent(self, leg: OptionLeg) -> OptionLeg:
        if leg.position_intent is not None:
            return leg
        held = self.position_qty(leg.symbol)
        if leg.side is Side.BUY:
            intent = "buy_to_close" if held < 0 else "buy_to_open"
        else:
            intent = "sell_to_close" if held > 0 else "sell_to_open"
        return leg.model_copy(update={"position_intent": intent})

    def _check_closing(self, legs: list[OptionLeg], qty: Decimal) -> None:
        for leg in legs:
            if not (leg.position_intent or "").endswith("_to_close"):
                continue
            held = self.position_qty(leg.symbol)
            closable = held if leg.side is Side.SELL else -held
            reserved = self._held_for_orders(leg.symbol, leg.side)
            available = max(ZERO, closable - reserved)
            wanted = qty * leg.ratio_qty
            if wanted > available:
                raise ApiError(
                    403,
                    f"insufficient qty available for order (requested: {fmt(wanted)}, "
                    f"available: {fmt(available)})",
                    CODE_FORBIDDEN,
                    available=fmt(available),
                    existing_qty=fmt(abs(held)),
                    held_for_orders=fmt(reserved),
                    symbol=leg.symbol,
                )

    def _held_for_orders(self, symbol: str, side: Side) -> Decimal:
        return sum(
            (
                o.remaining
                for o in self.broker.book.open_orders(symbol)
                if o.side is side and (o.position_intent or "").endswith("_to_close")
            ),
            ZERO,
        )

    def _records(
        self, intent: OptionOrderIntent, legs: list[OptionLeg], client_order_id: str, now: datetime
    ) -> list[OrderRecord]:
        session = self.broker.calendar.trading_session_for(now)
        day, expires = (session.day, session.close) if session else (None, None)
        single = intent.order_class is OrderClass.SIMPLE
        first = legs[0]
        parent = OrderRecord(
            id=uuid4(),
            client_order_id=client_order_id,
            symbol=first.symbol if single else "",
            asset_id=contract_id_for(first.symbol) if single else uuid4(),
            side=first.side if single else Side.BUY,
            type=intent.type,
            time_in_force=TimeInForce.DAY,
            order_class=intent.order_class,
            qty=intent.qty,
            limit_price=intent.limit_price,
            status=Status.ACCEPTED,
            created_at=now,
            updated_at=now,
            submitted_at=now,
            expires_at=expires,
            session_day=day,
            asset_class="us_option",
            position_intent=first.position_intent if single else None,
        )
        if single:
            return [parent]
        children = [
            OrderRecord(
                id=uuid4(),
                client_order_id=str(uuid4()),
                symbol=leg.symbol,
                asset_id=contract_id_for(leg.symbol),
                side=leg.side,
                type=intent.type,
                time_in_force=TimeInForce.DAY,
                order_class=OrderClass.MLEG,
                qty=intent.qty * leg.ratio_qty,
                status=Status.ACCEPTED,
                created_at=now,
                updated_at=now,
                submitted_at=now,
                expires_at=expires,
                session_day=day,
                parent_id=parent.id,
                activated=False,
                asset_class="us_option",
                position_intent=leg.position_intent,
                ratio_qty=Decimal(leg.ratio_qty),
            )
            for leg in legs
        ]
        parent.leg_ids = [child.id for child in children]
        return [parent, *children]

    # ---- execution ------------------------------------------------------------------------
    def evaluate(self, order: OrderRecord, when: datetime) -> None:
        """Fill an option order whole when its (net) executable price meets its limit."""
        if order.parent_id is not None or not order.is_open or order.remaining <= 0:
            return
        for leg in self.broker.book.legs_of(order):
            if leg.status is Status.ACCEPTED and order.status is Status.NEW:
                leg.status, leg.updated_at = Status.NEW, when  # legs show their parent's status
        legs = self.legs_of(order)
        quotes = {leg.symbol: self.quote(leg.symbol, when) for leg in legs}
        net = net_price(legs, quotes)
        if order.leg_ids:
            if not marketable(order.type, order.limit_price, net):
                return
        else:
            limit = order.limit_price
            if order.side is Side.SELL and limit is not None:
                limit = -limit  # a sell limit is the least premium taken: a minimum credit
            if not marketable(order.type, limit, net):
                return
            if order.side is Side.SELL and quotes[order.symbol].bid <= 0:
                return  # nothing to sell into
        book = self.broker.book
        units = order.remaining
        for record in [*book.legs_of(order)] or [order]:
            quote = quotes[record.symbol]
            price = quote.ask if record.side is Side.BUY else quote.bid
            self._fill(record, record.remaining, price, when)
        if order.leg_ids:
            self._fill_parent(order, units, net, when)

    def fill_now(
        self, order: OrderRecord, qty: Decimal | None, price: Decimal | None
    ) -> OrderRecord:
        """Fill `qty` units (default: the rest) of an open option order now (`/_sim` fill).

        The units execute at `price`, else the order's limit (an mleg's net limit per unit),
        else (market) the current net at the far side; each leg fills ratio x units, and
        positions, cash and events move exactly as a full fill of that many units would.
        """
        now = self.broker.sync()
        if order.parent_id is not None:
            raise unprocessable("fill the mleg parent order, not one of its legs")
        if not order.is_open or order.qty is None:
            raise unprocessable(f'order is already in "{order.status.value}" state')
        units = min(qty, order.remaining) if qty is not None else order.remaining
        if units <= 0 or units != units.to_integral_value():
            raise unprocessable("qty must be a whole number of contracts > 0")
        legs = self.legs_of(order)
        unit = price if price is not None else order.limit_price
        if unit is None:
            unit = net_price(legs, {leg.symbol: self.quote(leg.symbol, now) for leg in legs})
            if not order.leg_ids and order.side is Side.SELL:
                unit = -unit  # a single-leg sell executes at the (positive) bid
        records = self.broker.book.legs_of(order)
        if not records:
            self._fill(order, units, unit, now)
            return order
        leg_prices = split_net(
            legs, unit, {leg.symbol: self.quote(leg.symbol, now) for leg in legs}
        )
        for record in records:
            self._fill(record, units * (record.ratio_qty or 1), leg_prices[record.symbol], now)
        self._fill_parent(order, units, unit, now)
        return order

    def _fill(self, order: OrderRecord, qty: Decimal, price: Decimal, when: datetime) -> None:
        event = _record_execution(order, qty, price, when)
        signed = qty if order.side is Side.BUY else -qty
        self._move(order.symbol, signed, price)
        self.broker.book.account.cash -= signed * price * CONTRACT_MULTIPLIER
        self.broker.book.emit(
            event,
            order,
            when,
            price=price,
            qty=qty,
            position_qty=self.position_qty(order.symbol),
            execution_id=uuid4(),
        )

    def _fill_parent(
        self, order: OrderRecord, units: Decimal, net: Decimal, when: datetime
    ) -> None:
        event = _record_execution(order, units, net, when)
        self.broker.book.emit(event, order, when, price=net, qty=units, execution_id=uuid4())

    def _move(self, symbol: str, signed: Decimal, price: Decimal) -> None:
        position = self.positions.get(symbol)
        if position is None:
            self.positions[symbol] = OptionPositionRecord(
                symbol=symbol, qty=signed, avg_entry_price=price
            )
            return
        qty, avg = after_fill(position.qty, position.avg_entry_price, signed, price)
        if qty == 0:
            del self.positions[symbol]
        else:
            position.qty, position.avg_entry_price = qty, avg

    # ---- open orders and position views ---------------------------------------------------
    def has_open_orders(self) -> bool:
        """Return True while any option order is open."""
        return any(o.asset_class == "us_option" for o in self.broker.book.open_orders())

    def position_json(self, symbol: str, when: datetime) -> dict[str, Any]:
        """Render an option position as Alpaca does (asset_class us_option, qty in contracts)."""
        position = self.positions[symbol]
        closing = Side.SELL if position.qty > 0 else Side.BUY
        available = abs(position.qty) - self._held_for_orders(symbol, closing)
        price = self.quote(symbol, when).mid
        return option_position_json(position, contract_id_for(symbol), price, available)

    # ---- closing --------------------------------------------------------------------------
    def close_position(self, symbol: str, qty: Decimal | None) -> OrderRecord:
        """Submit a market order closing all (or `qty` contracts) of an option position."""
        held = self.position_qty(symbol)
        size = qty if qty is not None else abs(held)
        side = Side.SELL if held > 0 else Side.BUY
        body = {
            "symbol": symbol,
            "qty": str(size),
            "side": side.value,
            "type": "market",
            "time_in_force": "day",
            "position_intent": f"{side.value}_to_close",
        }
        return self.submit(parse_option_order(body))


def _record_execution(order: OrderRecord, qty: Decimal, price: Decimal, when: datetime) -> str:
    """Add an execution to an order (weighted average price) and return its event name.

    Alpaca: orders may fill partially (status ``partially_filled``, ``filled_qty`` so far).
    """
    total = order.filled_qty + qty
    paid = (order.filled_avg_price or ZERO) * order.filled_qty + price * qty
    order.filled_avg_price = (paid / total).quantize(Decimal("0.0001")).normalize()
    order.filled_qty = total
    order.updated_at = when
    if order.remaining <= 0:
        order.status, order.filled_at, order.working = Status.FILLED, when, False
        return "fill"
    if order.pending is not None and order.status in PENDING_STATUSES:
        order.pending.resume_status = Status.PARTIALLY_FILLED  # the cancel/replace still lands
    else:
        order.status = Status.PARTIALLY_FILLED
    order.working = True
    return "partial_fill"


def split_net(
    legs: list[OptionLeg], net: Decimal, quotes: Mapping[str, OptionQuoteLike]
) -> dict[str, Decimal]:
    """Return a per-contract price for each leg whose ratio-weighted sum is `net` exactly.

    Legs start at their mids (to the cent); the difference goes to one leg that can take it
    without a negative price: a buy leg pays more for a higher net, a sell leg receives more
    for a lower one (smallest ratio first, so the split stays in cents).
    """
    cent = Decimal("0.01")
    prices = {leg.symbol: max(ZERO, quotes[leg.symbol].mid.quantize(cent)) for leg in legs}
    sign = {leg.symbol: 1 if leg.side is Side.BUY else -1 for leg in legs}
    diff = net - sum(sign[leg.symbol] * leg.ratio_qty * prices[leg.symbol] for leg in legs)
    if diff == 0:
        return prices
    ordered = sorted(legs, key=lambda leg: ((sign[leg.symbol] > 0) != (diff > 0), leg.ratio_qty))
    for leg in ordered:
        change = diff * sign[leg.symbol] / leg.ratio_qty
        price = prices[leg.symbol] + change
        if price >= 0 and price == price.quantize(cent):
            prices[leg.symbol] = price
            return prices
    raise unprocessable(f"net price {fmt(net)} cannot be split over the legs in cents")
