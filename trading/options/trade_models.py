"""OptionTradeWorkflow's models and its pure decisions: legs, limits, client ids, the mark.

Prices are per share; an `mleg` order's `limit_price` is the net price of one unit (Alpaca's
convention): positive is a debit paid, negative a credit received. Opening an iron condor sells
the shorts and buys the wings for a credit; closing it buys the shorts back and sells the wings
for a debit. Dollar amounts are per share * 100 * qty.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from enum import StrEnum

from pydantic import BaseModel, Field

from trading.broker_models import TERMINAL_STATUSES, OrderSide, OrderStatus, ProbeOutcome
from trading.ledger_records import TradeOrigin
from trading.models import Frozen
from trading.options.chain import CONTRACT_MULTIPLIER
from trading.options.condor import CondorPlan
from trading.options.exits import CondorExitRules, ExitDecision

PRICE_TICK = Decimal("0.01")  # net prices of multi-leg option orders are in cents
MAX_CLIENT_ORDER_ID = 48
FORCED_EXIT = "forced"  # the exit reason of a FORCE_EXIT close
ENTRY_FAILED = "entry_failed"  # the exit reason of an entry that never filled


class OptionTradeStatus(StrEnum):
    """Where an option trade is: entering, open, closing, or done."""

    PENDING_ENTRY = "PENDING_ENTRY"
    OPEN = "OPEN"
    CLOSING = "CLOSING"
    CLOSED = "CLOSED"
    ENTRY_FAILED = "ENTRY_FAILED"

    @property
    def is_terminal(self) -> bool:
        """Nothing more happens to the trade."""
        return self in (OptionTradeStatus.CLOSED, OptionTradeStatus.ENTRY_FAILED)


class OptionLeg(Frozen):
    """One leg of a multi-leg order: an OCC symbol, a side and its ratio."""

    symbol: str
    side: OrderSide
    ratio_qty: int = Field(default=1, ge=1)


class OptionTradeSpec(Frozen):
    """What to open and how to manage it: the condor, size, credit, price walk and exit rules."""

    trade_id: str = Field(min_length=1, max_length=32)
    plan: CondorPlan
    qty: int = Field(default=1, ge=1)
    limit_credit: Decimal = Field(gt=0)  # per share, the first asking credit
    walk_step: Decimal = Field(default=PRICE_TICK, gt=0)  # credit given up per walk
    max_walk: Decimal = Field(default=Decimal(0), ge=0)  # total credit that may be given up
    entry_wait: timedelta = timedelta(seconds=5)  # how long each entry (or close) price works
    rules: CondorExitRules = CondorExitRules()
    check_interval: timedelta = timedelta(minutes=1)
    origin: TradeOrigin = TradeOrigin.INTERNAL  # external: adopted by reconcile, opened elsewhere


class OptionTradeState(BaseModel):
    """Everything the workflow knows, carried across continue-as-new."""

    status: OptionTradeStatus = OptionTradeStatus.PENDING_ENTRY
    entry_attempt: int = 0  # walk steps taken: the entry's client_order_id suffix
    entry_order_id: str | None = None
    entry_submitted_at: datetime | None = None
    credit: Decimal | None = None  # per share, received at the open
    force_exit: str | None = None  # FORCE_EXIT's reason, once asked
    exit_reason: str | None = None
    exit_attempt: int = 0
    exit_order_id: str | None = None
    exit_submitted_at: datetime | None = None
    exit_debit: Decimal | None = None  # per share, paid at the close
    mark: Decimal | None = None  # per share, the latest cost to close at the mids
    marked_at: datetime | None = None
    decision: ExitDecision | None = None
    realized_pnl: Decimal | None = None  # dollars
    legs_mismatch: str | None = None  # the legs held differ from the trade's: close held back
    # Units open now (None: the spec's qty). A partly filled entry opens what filled; a partly
    # filled close takes what it closed off this and adds its P&L to realized_pnl.
    open_qty: int | None = Field(default=None, ge=0)
    closed_qty: int = Field(default=0, ge=0)  # units closed so far (exit_debit: their average)
    checks: int = 0
    note: str = ""
    close_refusals: int = 0  # closing orders refused in a row: the next try waits longer
    wait_until: datetime | None = None  # the market is closed: no order goes out before this


class OptionTradeInput(Frozen):
    """Start (spec only) or continue (spec and state) an option trade."""

    spec: OptionTradeSpec
    state: OptionTradeState | None = None
    # A new run of a trade whose workflow ended (reconcile's restart): the old run may have
    # left a closing order working, so the new run looks for its open orders first.
    resume_orders: bool = False


class OptionForceExit(Frozen):
    """Close the structure now, whatever the rules say."""

    reason: str = "asked"


class OptionTradeResult(Frozen):
    """How the trade ended: status, reason, credit, exit debit and P&L."""

    trade_id: str
    status: OptionTradeStatus
    exit_reason: str | None
    credit: Decimal | None
    exit_debit: Decimal | None
    realized_pnl: Decimal | None


class OptionTradeView(Frozen):
    """The STATUS query's answer: the spec's identity and the full state."""

    trade_id: str
    underlying: str
    status: OptionTradeStatus
    legs: list[OptionLeg]
    state: OptionTradeState


class MlegOrderIntent(Frozen):
    """One multi-leg LIMIT order (day): net limit per unit, debit positive, credit negative."""

    client_order_id: str = Field(max_length=MAX_CLIENT_ORDER_ID)
    qty: int = Field(ge=1)
    legs: list[OptionLeg] = Field(min_length=2, max_length=4)
    limit_price: Decimal


class OptionOrderView(Frozen):
    """A multi-leg order as the broker reports it (net fill price of the parent)."""

    id: str
    client_order_id: str
    status: OrderStatus
    qty: Decimal | None = None
    filled_qty: Decimal = Decimal(0)
    filled_avg_price: Decimal | None = None  # net per unit: debit positive, credit negative
    limit_price: Decimal | None = None

    @property
    def is_terminal(self) -> bool:
        """The order is final (filled, cancelled, expired, rejected, ...)."""
        return self.status in TERMINAL_STATUSES

    @property
    def is_final(self) -> bool:
        """Nothing more can fill: filled, cancelled, expired or rejected. Alpaca's `stopped`
        (a fill is guaranteed, not yet made), `suspended` (may trade again), `done_for_day`
        (may expire or trade later) and `replaced` (a replacement works) are not: the next
        price of a walk or a close goes out only after one of these four."""
        return self.status in OPTION_FINAL_STATUSES


OPTION_FINAL_STATUSES = frozenset(
    {OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.EXPIRED, OrderStatus.REJECTED}
)


class OptionOrderRef(Frozen):
    """An option order by broker id."""

    order_id: str


class OptionClientOrderRef(Frozen):
    """An option order by our client_order_id."""

    client_order_id: str


class OpenOptionOrdersQuery(Frozen):
    """One trade's working mleg orders: their client_order_id starts with `prefix`."""

    prefix: str = Field(min_length=1)


class OpenOptionOrders(Frozen):
    """The working orders found, oldest first."""

    orders: list[OptionOrderView] = Field(default_factory=list)


class OptionOrderProbe(Frozen):
    """exists / absent / unknown, and the order when it exists."""

    outcome: ProbeOutcome
    order: OptionOrderView | None = None
    error: str | None = None


class OptionQuotesRequest(Frozen):
    """The latest quotes of these option symbols."""

    symbols: list[str] = Field(min_length=1)


class OptionQuote(Frozen):
    """One option's latest bid and ask (per share)."""

    symbol: str
    bid: Decimal = Field(ge=0)
    ask: Decimal = Field(ge=0)

    @property
    def mid(self) -> Decimal:
        """(bid + ask) / 2."""
        return (self.bid + self.ask) / 2


class OptionMarks(Frozen):
    """Latest quotes of a structure's legs, when they were read, and the broker's session day."""

    quotes: list[OptionQuote]
    as_of: datetime
    session_date: date  # the New York date of `as_of` (the exit rules' "today")


def opening_legs(plan: CondorPlan) -> list[OptionLeg]:
    """Buy the wings, sell the shorts (ratio 1 each)."""
    return [
        OptionLeg(symbol=plan.long_put.symbol, side=OrderSide.BUY),
        OptionLeg(symbol=plan.short_put.symbol, side=OrderSide.SELL),
        OptionLeg(symbol=plan.short_call.symbol, side=OrderSide.SELL),
        OptionLeg(symbol=plan.long_call.symbol, side=OrderSide.BUY),
    ]


def closing_legs(legs: list[OptionLeg]) -> list[OptionLeg]:
    """The opposite of each opening leg: buy back the shorts, sell the wings."""
    flip = {OrderSide.BUY: OrderSide.SELL, OrderSide.SELL: OrderSide.BUY}
    return [
        OptionLeg(symbol=leg.symbol, side=flip[leg.side], ratio_qty=leg.ratio_qty) for leg in legs
    ]


CLOSE_ROLE = "close"
OPEN_ROLE = "open"


def is_closing_order(client_order_id: str) -> bool:
    """True for an option trade's closing order (`<trade_id>-close-<attempt>`)."""
    head, _, attempt = client_order_id.rpartition("-")
    return attempt.isdigit() and head.endswith(f"-{CLOSE_ROLE}")


def client_order_id(trade_id: str, role: str, attempt: int) -> str:
    """`<trade_id>-<role>-<attempt>`: deterministic, one per intended order."""
    cid = f"{trade_id}-{role}-{attempt}"
    if len(cid) > MAX_CLIENT_ORDER_ID:
        raise ValueError(f"client_order_id {cid!r} is longer than {MAX_CLIENT_ORDER_ID}")
    return cid


def to_tick(price: Decimal) -> Decimal:
    """A net price on the cent grid."""
    return price.quantize(PRICE_TICK, rounding=ROUND_HALF_EVEN)


def entry_credit(spec: OptionTradeSpec, attempt: int) -> Decimal | None:
    """The credit asked at this walk step, or None once the walk limit is passed."""
    given_up = spec.walk_step * attempt
    if given_up > spec.max_walk:
        return None
    credit = to_tick(spec.limit_credit - given_up)
    return credit if credit > 0 else None


def entry_intent(spec: OptionTradeSpec, attempt: int) -> MlegOrderIntent | None:
    """The opening mleg order at this walk step (credit: a negative limit), or None."""
    credit = entry_credit(spec, attempt)
    if credit is None:
        return None
    return MlegOrderIntent(
        client_order_id=client_order_id(spec.trade_id, OPEN_ROLE, attempt),
        qty=spec.qty,
        legs=opening_legs(spec.plan),
        limit_price=-credit,
    )


def units_open(spec: OptionTradeSpec, state: OptionTradeState) -> int:
    """The units the trade holds now: what its entry filled, less what closes took off."""
    return spec.qty if state.open_qty is None else state.open_qty


def filled_units(order: OptionOrderView) -> int:
    """Whole units an order filled (an mleg unit is one of each leg at its ratio)."""
    return int(order.filled_qty)


def book_close_fill(state: OptionTradeState, units: int, debit: Decimal) -> int:
    """Take `units` closed at `debit` off the open units: their P&L joins realized_pnl and
    exit_debit becomes the average debit of everything closed. Returns the units left."""
    if state.credit is None or units <= 0:
        raise ValueError(f"a close fill needs a credit and units > 0 (got {units})")
    left = (state.open_qty or 0) - units
    if left < 0:
        raise ValueError(f"closed {units} units of {state.open_qty}")
    before = state.closed_qty
    average = state.exit_debit if state.exit_debit is not None else Decimal(0)
    state.closed_qty = before + units
    state.exit_debit = (average * before + debit * units) / state.closed_qty
    state.realized_pnl = (state.realized_pnl or Decimal(0)) + realized_pnl(
        state.credit, debit, units
    )
    state.open_qty = left
    return left


def close_intent(
    spec: OptionTradeSpec, debit: Decimal, attempt: int, units: int | None = None
) -> MlegOrderIntent:
    """The closing mleg order for `units` (default: the spec's qty): pay up to `debit` per
    unit (a positive limit, at least a tick: a worthless structure still needs a price the
    broker takes), never more than the condor's width - no iron condor is worth more than
    its wider spread, and a quote saying so would lock in a loss past the max loss."""
    return MlegOrderIntent(
        client_order_id=client_order_id(spec.trade_id, CLOSE_ROLE, attempt),
        qty=spec.qty if units is None else units,
        legs=closing_legs(opening_legs(spec.plan)),
        limit_price=min(max(to_tick(debit), PRICE_TICK), spec.plan.width),
    )


def _quotes_of(legs: list[OptionLeg], marks: OptionMarks) -> dict[str, OptionQuote]:
    found = {quote.symbol: quote for quote in marks.quotes}
    missing = [leg.symbol for leg in legs if leg.symbol not in found]
    if missing:
        raise ValueError(f"no quote for {', '.join(missing)}")
    return found


def unusable_quotes(legs: list[OptionLeg], marks: OptionMarks) -> str | None:
    """Why these quotes cannot mark the structure (None: they can): a leg with no ask (0) or
    a crossed quote (bid over ask) says nothing about its price - a 0/0 leg would mark the
    condor near 0 and take profit on no trade at all."""
    quotes = _quotes_of(legs, marks)
    bad = [
        f"{leg.symbol} {q.bid}/{q.ask}"
        for leg in legs
        if (q := quotes[leg.symbol]).ask <= 0 or q.bid > q.ask
    ]
    return f"no usable quote for {', '.join(bad)}" if bad else None


def mark_to_close(legs: list[OptionLeg], marks: OptionMarks) -> Decimal:
    """The cost to close at the mids, per unit: short mids - long mids (opening legs)."""
    quotes = _quotes_of(legs, marks)
    total = Decimal(0)
    for leg in legs:
        sign = 1 if leg.side is OrderSide.SELL else -1
        total += sign * leg.ratio_qty * quotes[leg.symbol].mid
    return max(to_tick(total), Decimal(0))


def natural_debit(legs: list[OptionLeg], marks: OptionMarks) -> Decimal:
    """The cost to close at the far side: shorts bought at the ask, longs sold at the bid."""
    quotes = _quotes_of(legs, marks)
    total = Decimal(0)
    for leg in legs:
        quote = quotes[leg.symbol]
        total += leg.ratio_qty * (quote.ask if leg.side is OrderSide.SELL else -quote.bid)
    return max(to_tick(total), Decimal(0))


def realized_pnl(credit: Decimal, debit: Decimal, qty: int) -> Decimal:
    """(credit - debit) * 100 * qty, in dollars."""
    return (credit - debit) * CONTRACT_MULTIPLIER * qty


def order_attempt(client_order_id: str, trade_id: str, role: str) -> int | None:
    """The attempt number of `<trade_id>-<role>-<attempt>`, None for any other id."""
    head = f"{trade_id}-{role}-"
    tail = client_order_id.removeprefix(head)
    return int(tail) if client_order_id.startswith(head) and tail.isdigit() else None
