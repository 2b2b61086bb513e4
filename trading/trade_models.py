"""TradeWorkflow's input, state, signal, update, query and result models.

contracts/trade.py binds them to the workflow's names and says who sends what. BrokerSync
routes each order event to the trade that owns the order: the trade id is the client_order_id
prefix (trading/ids.py).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum

from pydantic import AwareDatetime, BaseModel, Field, model_validator

from trading.broker_models import BrokerOrder
from trading.ids import validate_trade_id
from trading.ledger_records import CloseReason, ExitUrgency, TradeStatus
from trading.models import Frozen
from trading.ticks import is_on_tick


class EntryType(StrEnum):
    """How the entry order is priced."""

    MARKET = "market"
    LIMIT = "limit"


class RescueEscalation(StrEnum):
    """What to do after too many consecutive failed rescues."""

    MARKET_EXIT = "market_exit"
    HALT_ENTRIES = "halt_entries"  # alert only here: TradingControl acts on the risk event


class WindowEscalation(StrEnum):
    """What to do when a next-open exit window ends unfilled."""

    MARKET_EXIT = "market_exit"
    REPLAN = "replan"  # keep the stop and plan again for the following session


class TradeSpec(Frozen):
    """What to trade and how to guard it (long only); all prices on the tick grid."""

    trade_id: str
    symbol: str = Field(min_length=1, max_length=16)
    qty: Decimal = Field(gt=0)
    entry_type: EntryType = EntryType.MARKET
    limit_price: Decimal | None = Field(default=None, gt=0)
    stop_price: Decimal = Field(gt=0)
    take_profit_price: Decimal | None = Field(default=None, gt=0)
    entry_timeout: timedelta = timedelta(minutes=5)
    # A partly filled entry's shares have no working stop (the legs wait for a complete fill):
    # after this long the rest of the entry is cancelled and the shares get their own stop.
    partial_fill_grace: timedelta = timedelta(seconds=5)
    # How long a tighten or resize waits for a replace to settle before leaving it to the guard.
    replace_settle: timedelta = timedelta(seconds=5)
    # How long an add-on's market buy may work before the rest of it is cancelled.
    add_on_fill_timeout: timedelta = timedelta(seconds=30)
    protect_only: bool = False  # adopted external position: no entry, guard what is there
    existing_stop_order_id: str | None = None  # an adopted position's stop, if it has one
    # a restarted guard's take-profit that still works at the broker (kept, and restored with
    # the stop if a rescue is needed)
    existing_take_profit_order_id: str | None = None
    check_interval: timedelta = timedelta(seconds=60)
    # A protected trade whose BrokerSync view is fresh only checks itself this often (with
    # jitter): BrokerSync's events and changed snapshots wake it when something happens.
    idle_check_interval: timedelta = timedelta(minutes=10)
    snapshot_max_age: timedelta = timedelta(seconds=45)  # trust BrokerSync data this young
    rescue_backoff_initial: timedelta = timedelta(seconds=2)
    rescue_backoff_max: timedelta = timedelta(seconds=60)
    rescue_alert_after: int = Field(default=3, ge=1)
    rescue_escalation: RescueEscalation = RescueEscalation.HALT_ENTRIES
    exit_window_start: timedelta = timedelta(minutes=5)
    exit_window_end: timedelta = timedelta(minutes=30)
    exit_window_escalation: WindowEscalation = WindowEscalation.MARKET_EXIT
    signal_id: int | None = None

    @model_validator(mode="after")
    def _consistent(self) -> TradeSpec:
        validate_trade_id(self.trade_id)
        if self.entry_type is EntryType.LIMIT and self.limit_price is None:
            raise ValueError("a limit entry needs limit_price")
        for name in ("limit_price", "stop_price", "take_profit_price"):
            price = getattr(self, name)
            if price is not None and not is_on_tick(price):
                raise ValueError(f"{name} {price} is not on the tick grid")
        if self.take_profit_price is not None and self.take_profit_price <= self.stop_price:
            raise ValueError("take_profit_price must be above stop_price")
        if self.exit_window_end <= self.exit_window_start:
            raise ValueError("exit_window_end must be after exit_window_start")
        return self


class RescueTelemetry(BaseModel):
    """How the stop rescues went: counters and the last attempt."""

    attempted: int = 0
    ok: int = 0
    failed: int = 0
    consecutive_failures: int = 0
    last_at: datetime | None = None
    last_status: str | None = None
    last_error: str | None = None
    last_failure_kind: str | None = None  # the last failure's error type
    next_at: datetime | None = None  # backoff: no new rescue before this
    alerted: bool = False
    last_gap_ms: int | None = None  # first missing-stop sighting to accepted rescue


class ExitPlan(BaseModel):
    """A requested exit and how it is going."""

    urgency: ExitUrgency
    reason: str
    requested_at: datetime
    window_start: datetime | None = None  # broker (market) time
    window_end: datetime | None = None
    # broker clock minus workflow clock when the window was planned: market decisions follow
    # the broker's clock (source of truth; a paper broker's may be simulated)
    clock_offset: timedelta = timedelta(0)
    exit_order_id: str | None = None
    stop_cancel_confirmed_at: datetime | None = None
    gap_ms: int | None = None  # confirmed stop cancel -> exit accepted (the unprotected gap)


class AddOn(Frozen):
    """Buy `qty` more of the trade's symbol; the stop is then resized to the whole position.

    `signal_key` names the add-on: the same key never buys twice (it is the update id, and the
    trade remembers it across continue-as-new). `max_notional` refuses the buy when qty at the
    current ask would cost more.
    """

    qty: Decimal = Field(gt=0)
    signal_key: str = Field(min_length=1, max_length=200)
    reason: str = ""
    max_notional: Decimal | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _whole_shares(self) -> AddOn:
        if self.qty != self.qty.to_integral_value():
            raise ValueError(f"an add-on buys whole shares, not {self.qty}")
        return self


class AddOnResult(Frozen):
    """What an add-on did: its fill, the position now and the stop that covers it.

    `filled_qty` / `avg_price` are the add-on's own fill (0 / None when nothing filled);
    `entry_price` is the trade's average entry after it. `stop_qty` is what the trade's stop
    covers when the update answers (a resize the broker still settles says so in `note`; the
    guard finishes it).
    """

    filled_qty: Decimal
    avg_price: Decimal | None
    position_qty: Decimal
    stop_order_id: str | None
    stop_qty: Decimal
    order_id: str | None
    client_order_id: str
    entry_price: Decimal | None = None
    note: str = ""


class AddOnRequest(Frozen):
    """Ask trade `trade_id` for an add-on (the market loop, through TradeLinkActivities)."""

    trade_id: str = Field(min_length=1)
    add_on: AddOn


class AddOnRecord(BaseModel):
    """One add-on buy of the trade, by the signal that asked for it; kept in the trade's state.

    The trade knows every add-on order it placed, so the guard can finish one left half done
    (cancel its stop leg, which holds shares a whole-position stop needs) and a repeated
    request with the same signal_key answers from here instead of buying again.
    """

    signal_key: str
    qty: Decimal
    client_order_id: str
    requested_at: datetime
    deadline: datetime  # an unfilled rest is cancelled after this
    order_id: str | None = None
    stop_leg_id: str | None = None
    filled_qty: Decimal = Decimal(0)
    avg_price: Decimal | None = None
    fill_recorded: bool = False  # its fill is in filled_qty / entry_price and the ledger
    done: bool = False  # the order and its stop leg are over at the broker
    refused: str | None = None  # why it was refused (a repeat is refused the same way)
    result: AddOnResult | None = None  # the answer given (a repeat gets the same)

    @property
    def progress(self) -> str:
        """Where the add-on stands, in words (the trade's details page)."""
        if self.refused is not None:
            return f"refused: {self.refused}"
        return "done" if self.done else "working"


class TradeState(BaseModel):
    """Everything the workflow knows; carried whole across continue-as-new."""

    status: TradeStatus = TradeStatus.PENDING_ENTRY
    created: bool = False
    entry_attempt: int = 0
    rescue_attempt: int = 0
    exit_attempt: int = 0
    stop_attempt: int = 0  # replacement client_order_ids for tighten/resize
    entry_order_id: str | None = None
    entry_deadline: datetime | None = None
    entry_cancel_requested: bool = False
    partial_fill_at: datetime | None = None  # the entry's first partial fill, while it works
    filled_qty: Decimal = Decimal(0)
    entry_price: Decimal | None = None
    position_qty: Decimal = Decimal(0)
    stop_price: Decimal
    stop_order_id: str | None = None
    take_profit_price: Decimal | None = None
    take_profit_order_id: str | None = None
    stop_missing_since: datetime | None = None
    rescue: RescueTelemetry = Field(default_factory=RescueTelemetry)
    exit: ExitPlan | None = None
    close_reason: CloseReason | None = None
    exit_price: Decimal | None = None
    realized_pnl: Decimal | None = None
    closed_at: datetime | None = None
    last_check_at: datetime | None = None
    last_check_note: str = ""
    events_received: int = 0
    # Orders known to have ended (stream events): carried across continue-as-new, so a stop
    # cancelled just before it is not believed alive from an older snapshot.
    ended_orders: list[BrokerOrder] = Field(default_factory=list)
    snapshot_checks: int = 0  # checks settled by a BrokerSync snapshot (no broker call)
    broker_checks: int = 0  # checks that asked the broker
    add_ons: list[AddOnRecord] = Field(default_factory=list)

    def add_on_of(self, signal_key: str) -> AddOnRecord | None:
        """The add-on this signal asked for, if any."""
        return next((a for a in self.add_ons if a.signal_key == signal_key), None)

    def unfinished_add_ons(self) -> list[AddOnRecord]:
        """Add-ons whose order or stop leg may still work at the broker."""
        return [a for a in self.add_ons if not a.done]


class TradeWorkflowInput(BaseModel):
    """Start (state None) or continue (state carried) a trade workflow."""

    spec: TradeSpec
    state: TradeState | None = None


class PositionSeen(Frozen):
    """A position's size as read from the broker at a moment (0 = flat)."""

    qty: Decimal
    observed_at: AwareDatetime


class OrderEvent(Frozen):
    """One trade_updates event for an order of this trade (from BrokerSync)."""

    event: str
    order: BrokerOrder
    timestamp: AwareDatetime
    price: Decimal | None = None
    qty: Decimal | None = None
    position_qty: Decimal | None = None
    # the symbol's position as the listener read it after receiving this event (when it did)
    position_seen: PositionSeen | None = None


class PositionUpdate(Frozen):
    """BrokerSync's snapshot of this trade's symbol: position (0 = flat) and open orders.

    A fresh snapshot that shows the position covered by the trade's active stop spares the
    trade its own broker calls, so calls per minute stay flat as trades grow; anything else
    makes the trade ask the broker itself.
    """

    symbol: str
    qty: Decimal
    observed_at: AwareDatetime
    open_orders: list[BrokerOrder] = Field(default_factory=list)


class ForceExit(Frozen):
    """Exit now (IMMEDIATE) or in the next session's opening window (NEXT_OPEN)."""

    urgency: ExitUrgency
    reason: str = Field(min_length=1)


class TightenStop(Frozen):
    """Move the protective stop up (never down)."""

    price: Decimal = Field(gt=0)


class TightenResult(Frozen):
    """The stop after a tighten (a replace still settling, or redone as cancel-and-place,
    says so in `note`; the guard finishes it)."""

    stop_price: Decimal
    stop_order_id: str
    note: str = ""


class TradeStatusView(Frozen):
    """What the `status` query answers."""

    trade_id: str
    symbol: str
    status: TradeStatus
    state: TradeState


class TradeResult(Frozen):
    """How a trade ended."""

    trade_id: str
    status: TradeStatus
    close_reason: CloseReason | None
    exit_price: Decimal | None
    realized_pnl: Decimal | None


class TradeExitRequest(Frozen):
    """Tell trade `trade_id` to exit (the exit review, trading control's flatten)."""

    trade_id: str = Field(min_length=1)
    exit: ForceExit


class SignalDelivery(Frozen):
    """Whether a signal reached a running trade workflow."""

    trade_id: str
    delivered: bool
    note: str = ""
