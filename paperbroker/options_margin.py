"""Option positions: what they hold back from options buying power and what they are worth.

`OptionsMargin` keeps the options desk's state outside the book (positions, their non-trade
activities, the quote source) and answers from it and the book's open option orders: the
worst-case settlement the positions need, the premium open orders may still pay, options
buying power, what a new order takes from it, and the positions' market value. Exercise and
expiry (options_exercise.py) and the order flow (options_orders.py) build on it.

Sources (the stricter reading where they differ):
* Alpaca "Options Trading" (docs.alpaca.markets/docs/options-trading): levels 0-3 (the
  account's level is configured, 3 by default: long calls/puts, covered calls, cash-secured
  puts and call/put spreads; options_orders.py enforces what each level allows; uncovered
  short calls are refused at every level).
* Options buying power: see `OptionsMargin.held_back` (the rule is written there once).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Protocol

from paperbroker.errors import CODE_FORBIDDEN, ApiError, position_not_found
from paperbroker.models import OptionPositionRecord, OrderClass, OrderRecord, Side
from paperbroker.options_contracts import contract_id_for, parse_occ
from paperbroker.options_expiry import (
    CONTRACT_MULTIPLIER,
    Holding,
    Right,
    parse_contract,
    requirement_by_underlying,
)
from paperbroker.options_pricing import OptionPricer
from paperbroker.validation import OptionLeg, OptionOrderIntent

if TYPE_CHECKING:
    from paperbroker.broker import Broker

ZERO = Decimal(0)
OPTIONS_LEVEL = 3


class OptionQuoteLike(Protocol):
    """What the option pricer answers: bid, ask and mid per share."""

    @property
    def bid(self) -> Decimal:
        """Best bid."""

    @property
    def ask(self) -> Decimal:
        """Best offer."""

    @property
    def mid(self) -> Decimal:
        """Mid price."""


QuoteSource = Callable[[str, datetime], OptionQuoteLike]


def uncovered() -> ApiError:
    """Return the refusal of an uncovered short option (no Alpaca level allows it)."""
    return ApiError(403, "account not eligible to trade uncovered option contracts", CODE_FORBIDDEN)


def net_price(legs: list[OptionLeg], quotes: Mapping[str, OptionQuoteLike]) -> Decimal:
    """Return the executable net price of one unit: debit positive, credit negative.

    Buys pay the ask, sells receive the bid (the far side), each times its ratio.
    """
    total = ZERO
    for leg in legs:
        quote = quotes[leg.symbol]
        total += leg.ratio_qty * (quote.ask if leg.side is Side.BUY else -quote.bid)
    return total


@dataclass(frozen=True)
class OptionsActivity:
    """A non-trade activity (OPEXC, OPASN, OPEXP, OPTRD) as Alpaca records it.

    `net_amount` is the cash it moved (the shares' strike value for OPTRD, else 0) and `price`
    the strike the shares moved at (OPTRD only); GET /v2/account/activities answers them.
    """

    activity_type: str
    symbol: str
    qty: Decimal
    when: datetime
    net_amount: Decimal = ZERO
    price: Decimal | None = None


class OptionsMargin:
    """The desk's option positions and quotes: the cash they hold back and what they are worth."""

    def __init__(self, broker: Broker, quotes: QuoteSource | None = None) -> None:
        self.broker = broker
        self.level = OPTIONS_LEVEL
        self.positions: dict[str, OptionPositionRecord] = {}
        self.activities: list[OptionsActivity] = []
        self._quotes = quotes
        self._fixed_quotes = quotes is not None

    def reset(self) -> None:
        """Forget positions and activities (the orders live in the book)."""
        self.positions.clear()
        self.activities.clear()
        if not self._fixed_quotes:
            self._quotes = None  # the pricer reads the (new) price engine

    def restore(
        self, positions: Iterable[OptionPositionRecord], activities: Iterable[OptionsActivity]
    ) -> None:
        """Take back the positions and activities of a snapshot (after `reset`)."""
        self.positions = {p.symbol: p.model_copy() for p in positions}
        self.activities = list(activities)

    # ---- quotes ---------------------------------------------------------------------------
    def quote(self, symbol: str, when: datetime) -> OptionQuoteLike:
        """Return the option's quote from the pricer."""
        if self._quotes is None:
            self._quotes = pricer_quotes(self.broker)
        return self._quotes(symbol, when)

    # ---- positions ------------------------------------------------------------------------
    def resolve(self, symbol_or_id: str) -> str:
        """Return the held contract's symbol for an OCC symbol or a contract id."""
        if parse_contract(symbol_or_id) is not None:
            return symbol_or_id.upper()
        wanted = symbol_or_id.lower()
        for symbol in self.positions:
            if str(contract_id_for(symbol)) == wanted:
                return symbol
        raise position_not_found()

    def legs_of(self, order: OrderRecord) -> list[OptionLeg]:
        """Return the legs of an option order record (a single-leg order is its own leg)."""
        if not order.leg_ids:
            return [
                OptionLeg(
                    symbol=order.symbol,
                    side=order.side,
                    ratio_qty=1,
                    position_intent=order.position_intent,
                )
            ]
        return [
            OptionLeg(
                symbol=leg.symbol,
                side=leg.side,
                ratio_qty=int(leg.ratio_qty or 1),
                position_intent=leg.position_intent,
            )
            for leg in self.broker.book.legs_of(order)
        ]

    def position_qty(self, symbol: str) -> Decimal:
        """Return the signed contracts held of `symbol`."""
        position = self.positions.get(symbol)
        return position.qty if position else ZERO

    # ---- buying power ---------------------------------------------------------------------
    def _holdings(self, extra: Sequence[tuple[str, Decimal]] = ()) -> list[Holding]:
        signed: dict[str, Decimal] = {s: p.qty for s, p in self.positions.items()}
        for symbol, qty in extra:
            signed[symbol] = signed.get(symbol, ZERO) + qty
        holdings = []
        for symbol, qty in signed.items():
            contract = parse_contract(symbol)
            if contract is not None and qty != 0:
                holdings.append(Holding(contract=contract, contracts=qty))
        return holdings

    def shares_covering_calls(self, underlying: str) -> Decimal:
        """Return the shares of `underlying` that cover short calls, held or being sold to open.

        At each short call's expiry the long calls still alive cover first; 100 shares cover
        each call left (a covered call, as `_requirement_at_once` counts it). Those shares are
        not available to sell: selling them would leave the call naked, which no Alpaca level
        allows (rules.check_qty_available counts them as held for orders).
        """
        sells = [(s, q) for s, q in self._open_order_changes() if q < 0]
        calls = [
            h
            for h in self._holdings(sells)
            if h.contract.underlying == underlying and h.contract.right is Right.CALL
        ]
        needed = ZERO
        for expiry in {h.contract.expiry for h in calls if h.contracts < 0}:
            net = sum((h.contracts for h in calls if h.contract.expiry >= expiry), ZERO)
            needed = max(needed, -net * CONTRACT_MULTIPLIER)
        return needed

    def _shares(self) -> dict[str, Decimal]:
        return {s: p.qty for s, p in self.broker.book.positions.items()}

    def _open_order_changes(self) -> list[tuple[str, Decimal]]:
        changes: list[tuple[str, Decimal]] = []
        for order in self.broker.book.open_orders():
            if order.asset_class != "us_option" or order.leg_ids:
                continue
            remaining = order.remaining
            changes.append((order.symbol, remaining if order.side is Side.BUY else -remaining))
        return changes

    def settlement_requirement(self, extra: Sequence[tuple[str, Decimal]] = ()) -> Decimal | None:
        """Return the cash the positions (plus `extra` changes) need at worst settlement."""
        return requirement_by_underlying(self._holdings(extra), self._shares())

    def held_back(self, extra: Sequence[tuple[str, Decimal]], when: datetime) -> Decimal | None:
        """Return what option positions (plus `extra` changes) take from options buying power.

        The rule, the stricter reading of Alpaca's sources:
        * Alpaca forum t/16425 "Need clarity on margins while going short option spreads"
          (forum.alpaca.markets/t/need-clarity-on-margins-while-going-short-option-spreads/16425):
          a 111/113 NVDA call credit spread (risk "(113 - 111)*100 = $200") raised cash by $155
          (26649.22 to 26804.13) while options_buying_power fell "by $984.55" (26649.22 to
          25664.67), i.e. $1139.46 held back from the cash after the trade, far beyond the
          $200 maximum loss; the poster saw the same on a debit spread ("this issue happens
          even when we buy debit option spreads").
        * Alpaca "Options Trading" levels table: covered calls and cash-secured puts need
          "sufficient options buying power"; spreads are level 3; no level allows an uncovered
          short call.
        So: the worst-case settlement at expiry (a spread's maximum loss, width x 100 x qty; a
        cash-secured put's strike x 100), plus the market value of every short leg, plus the net
        premium credit the open positions of an underlying were opened for (a credit never adds
        buying power). None when a short is uncovered: the account has none to give.
        """
        settlement = self.settlement_requirement(extra)
        if settlement is None:
            return None
        return settlement + self._short_value(extra, when) + self._credit_received()

    def _short_value(self, extra: Sequence[tuple[str, Decimal]], when: datetime) -> Decimal:
        """Return the market value (mid, x100) of the short legs of positions plus `extra`."""
        total = ZERO
        for holding in self._holdings(extra):
            if holding.contracts < 0:
                mid = self.quote(holding.contract.symbol, when).mid
                total -= holding.contracts * mid * CONTRACT_MULTIPLIER
        return total

    def _credit_received(self) -> Decimal:
        """Return the net premium credit the open positions were opened for, per underlying."""
        net: dict[str, Decimal] = {}
        for symbol, position in self.positions.items():
            contract = parse_contract(symbol)
            if contract is not None:
                received = -position.qty * position.avg_entry_price * CONTRACT_MULTIPLIER
                net[contract.underlying] = net.get(contract.underlying, ZERO) + received
        return sum((max(ZERO, credit) for credit in net.values()), ZERO)

    def premium_reserved(self, when: datetime) -> Decimal:
        """Return the net debits the open option orders may still pay (a credit counts 0)."""
        total = ZERO
        for order in self.broker.book.open_orders():
            if order.asset_class != "us_option" or order.parent_id is not None:
                continue
            total += max(ZERO, self._order_premium(order, when))
        return total

    def _order_premium(self, order: OrderRecord, when: datetime) -> Decimal:
        legs = self.legs_of(order)
        if order.limit_price is not None:
            buys = bool(order.leg_ids) or order.side is Side.BUY
            unit = order.limit_price if buys else -order.limit_price
        else:
            unit = net_price(legs, {leg.symbol: self.quote(leg.symbol, when) for leg in legs})
        return unit * order.remaining * CONTRACT_MULTIPLIER

    def cash_committed(self, when: datetime) -> Decimal:
        """Return the cash option positions and open option orders hold back (all if uncovered)."""
        held = self.held_back(self._open_order_changes(), when)
        if held is None:
            return self.broker.book.account.cash
        return held + self.premium_reserved(when)

    def buying_power(self, when: datetime) -> Decimal:
        """Return options buying power: cash less open buys and what options hold back."""
        base = self.broker.book.account.cash - self.broker.reserved_for_buys(when)
        return max(ZERO, base - self.cash_committed(when))

    def order_requirement(
        self, legs: list[OptionLeg], intent: OptionOrderIntent, now: datetime
    ) -> Decimal:
        """Return what a new order takes from options buying power (`held_back`'s rule).

        What it adds to the amount held back (positions plus open orders plus this order) and
        its net debit at the limit (market orders at the far side); a credit offsets nothing.
        Refuses an order that leaves a short uncovered (403). An order that makes an uncovered
        account covered again only reduces risk: it takes nothing.
        """
        pending = self._open_order_changes()
        before = self.held_back(pending, now)
        change = [
            (leg.symbol, intent.qty * leg.ratio_qty * (1 if leg.side is Side.BUY else -1))
            for leg in legs
        ]
        after = self.held_back([*pending, *change], now)
        if after is None:
            raise uncovered()
        if before is None:
            return ZERO
        if intent.limit_price is not None:
            single_sell = intent.order_class is OrderClass.SIMPLE and legs[0].side is Side.SELL
            unit = -intent.limit_price if single_sell else intent.limit_price
        else:
            unit = net_price(legs, {leg.symbol: self.quote(leg.symbol, now) for leg in legs})
        debit = max(ZERO, unit * intent.qty * CONTRACT_MULTIPLIER)
        return max(ZERO, after - before + debit)

    # ---- valuation ------------------------------------------------------------------------
    def market_value(self, when: datetime) -> tuple[Decimal, Decimal]:
        """Return (long, short) market value of the option positions at the mid, x100."""
        long_value = short_value = ZERO
        for symbol, position in self.positions.items():
            value = position.qty * self.quote(symbol, when).mid * CONTRACT_MULTIPLIER
            if value > 0:
                long_value += value
            else:
                short_value += value
        return long_value, short_value

    def value(self, when: datetime) -> Decimal:
        """Return the net market value of the option positions."""
        long_value, short_value = self.market_value(when)
        return long_value + short_value


def pricer_quotes(broker: Broker) -> QuoteSource:
    """Return quotes of the option pricer (options_pricing.py) on the broker's prices."""
    pricer = OptionPricer(broker.prices, broker.calendar)

    def quote(symbol: str, when: datetime) -> OptionQuoteLike:
        found: OptionQuoteLike = pricer.quote(parse_occ(symbol), when)
        return found

    return quote
