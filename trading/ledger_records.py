"""Ledger records and commands: the values ledger activities take and return (Decimal money).

Trade writes that can be superseded (status, protection, exit intent) carry `as_of`, the
deciding workflow's `workflow.now()`; the ledger keeps the newest, so a stale or retried
write landing late never overwrites a newer one.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import TypeAlias

from pydantic import AwareDatetime, Field, model_validator

from trading.broker_models import OrderSide, OrderStatus, OrderType
from trading.models import AuditEntry, Frozen, JsonScalar


class LedgerRecordMissing(LookupError):
    """A write referred to a ledger row (trade, reconcile run) that does not exist."""


# --- enums -------------------------------------------------------------------------------


class SignalStatus(StrEnum):
    """Life of a signal: PENDING until scored once, then SCORED or ERROR for good."""

    PENDING = "PENDING"
    SCORED = "SCORED"
    ERROR = "ERROR"


class TradeStatus(StrEnum):
    """Life of a trade; CLOSED, ENTRY_FAILED and ENTRY_CANCELLED are terminal."""

    PENDING_ENTRY = "PENDING_ENTRY"
    OPEN = "OPEN"
    EXIT_PLANNED = "EXIT_PLANNED"
    EXITING = "EXITING"
    CLOSED = "CLOSED"
    ENTRY_FAILED = "ENTRY_FAILED"
    ENTRY_CANCELLED = "ENTRY_CANCELLED"

    @property
    def is_terminal(self) -> bool:
        """True for statuses a trade never leaves."""
        return self in TERMINAL_TRADE_STATUSES


TERMINAL_TRADE_STATUSES = frozenset(
    {TradeStatus.CLOSED, TradeStatus.ENTRY_FAILED, TradeStatus.ENTRY_CANCELLED}
)
# Statuses a live trade may be moved to by a transition; terminal ones come only from a close.
TRANSITION_TARGETS = frozenset({TradeStatus.OPEN, TradeStatus.EXIT_PLANNED, TradeStatus.EXITING})


class TradeSide(StrEnum):
    """Direction of a position."""

    LONG = "long"
    SHORT = "short"


class TradeOrigin(StrEnum):
    """Who opened the position: this system, or someone else (adopted by reconcile)."""

    INTERNAL = "internal"
    EXTERNAL = "external"


class CloseReason(StrEnum):
    """Why a trade ended."""

    STOP_FILLED = "STOP_FILLED"
    TAKE_PROFIT = "TAKE_PROFIT"
    EXIT_FILLED = "EXIT_FILLED"
    FORCE_EXIT = "FORCE_EXIT"
    EXTERNAL_CLOSE = "EXTERNAL_CLOSE"
    GHOST = "GHOST"
    ENTRY_CANCELLED = "ENTRY_CANCELLED"
    ENTRY_FAILED = "ENTRY_FAILED"


def terminal_status_for(reason: CloseReason) -> TradeStatus:
    """The terminal status a close with this reason leaves the trade in."""
    if reason is CloseReason.ENTRY_CANCELLED:
        return TradeStatus.ENTRY_CANCELLED
    if reason is CloseReason.ENTRY_FAILED:
        return TradeStatus.ENTRY_FAILED
    return TradeStatus.CLOSED


class ExitUrgency(StrEnum):
    """How soon a planned exit should happen."""

    IMMEDIATE = "IMMEDIATE"
    NEXT_OPEN = "NEXT_OPEN"


class OrderRole(StrEnum):
    """What an order does for its trade."""

    ENTRY = "entry"
    STOP = "stop"
    TAKE_PROFIT = "take_profit"
    EXIT = "exit"
    ADD_ON = "add_on"  # a buy that adds to an open trade (an OTO carrying the trade's stop)


class UnsubmittedStatus(StrEnum):
    """The status the ledger adds to Alpaca's: an order recorded before it is submitted."""

    PLANNED = "planned"


# An order's status in the ledger: PLANNED until the broker reports one of its own.
LedgerOrderStatus: TypeAlias = OrderStatus | UnsubmittedStatus

_ORDER_STATUS_RANK: dict[LedgerOrderStatus, int] = {
    UnsubmittedStatus.PLANNED: 0,
    OrderStatus.UNKNOWN: 1,
    OrderStatus.PENDING_NEW: 1,
    OrderStatus.PENDING_REVIEW: 1,
    OrderStatus.ACCEPTED: 2,
    OrderStatus.ACCEPTED_FOR_BIDDING: 2,
    OrderStatus.NEW: 2,
    OrderStatus.HELD: 2,
    OrderStatus.SUSPENDED: 2,
    OrderStatus.PARTIALLY_FILLED: 3,
    OrderStatus.PENDING_CANCEL: 4,
    OrderStatus.PENDING_REPLACE: 4,
}
_TERMINAL_ORDER_RANK = 5


def order_status_rank(status: LedgerOrderStatus) -> int:
    """How far along an order is; breaks ties between updates with the same broker time."""
    return _ORDER_STATUS_RANK.get(status, _TERMINAL_ORDER_RANK)


class RiskSeverity(StrEnum):
    """How bad a risk event is."""

    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


Money = Decimal
Quantity = Decimal

# --- trades --------------------------------------------------------------------------------


class ExitIntent(Frozen):
    """A decided exit: how urgent, why, and when it is planned for."""

    urgency: ExitUrgency
    reason: str = Field(min_length=1)
    planned_for: AwareDatetime | None = None


class TradeCreate(Frozen):
    """Create a trade; a trade id already stored returns the stored row unchanged."""

    trade_id: str = Field(min_length=1)
    symbol: str = Field(min_length=1)
    workflow_id: str = Field(min_length=1)
    side: TradeSide = TradeSide.LONG
    origin: TradeOrigin = TradeOrigin.INTERNAL
    status: TradeStatus = TradeStatus.PENDING_ENTRY
    qty: Quantity = Field(default=Decimal(0), ge=0)
    entry_price: Money | None = Field(default=None, gt=0)
    signal_id: int | None = None
    as_of: AwareDatetime

    @model_validator(mode="after")
    def _starts_live(self) -> TradeCreate:
        if self.status not in (TradeStatus.PENDING_ENTRY, TradeStatus.OPEN):
            raise ValueError("a trade starts PENDING_ENTRY (ours) or OPEN (adopted)")
        return self


class TradeTransition(Frozen):
    """Move a live trade to OPEN, EXIT_PLANNED or EXITING; older than the stored status loses."""

    trade_id: str = Field(min_length=1)
    status: TradeStatus
    as_of: AwareDatetime

    @model_validator(mode="after")
    def _live_target(self) -> TradeTransition:
        if self.status not in TRANSITION_TARGETS:
            raise ValueError(
                f"transition target must be one of {sorted(TRANSITION_TARGETS)}; "
                "terminal statuses come from close_trade"
            )
        return self


class TradeEntryFill(Frozen):
    """Cumulative entry fill: total filled qty and its average price (only ever grows)."""

    trade_id: str = Field(min_length=1)
    qty: Quantity = Field(gt=0)
    avg_price: Money = Field(gt=0)
    filled_at: AwareDatetime


class TradeProtection(Frozen):
    """The orders protecting a trade now: the stop and an optional take-profit."""

    trade_id: str = Field(min_length=1)
    stop_price: Money = Field(gt=0)
    stop_order_id: str = Field(min_length=1)
    take_profit_price: Money | None = Field(default=None, gt=0)
    take_profit_order_id: str | None = None
    as_of: AwareDatetime


class TradeExitIntent(Frozen):
    """Record (or with None, withdraw) the trade's exit intent."""

    trade_id: str = Field(min_length=1)
    exit_intent: ExitIntent | None
    as_of: AwareDatetime


class TradeClose(Frozen):
    """Close a trade; a second close is a no-op that returns the first."""

    trade_id: str = Field(min_length=1)
    close_reason: CloseReason
    exit_price: Money | None = Field(default=None, gt=0)
    realized_pnl: Money | None = None
    closed_at: AwareDatetime


class AuditedTradeClose(Frozen):
    """Close a trade and, in the same transaction, append `audit` if this close applies."""

    close: TradeClose
    audit: AuditEntry


class AuditedTradeCloses(Frozen):
    """Several audited closes in one transaction (each applies or not on its own)."""

    closes: list[AuditedTradeClose] = Field(min_length=1)


class OpenTradesQuery(Frozen):
    """Trades not yet closed, optionally for one symbol."""

    symbol: str | None = None


class TradeRecord(Frozen):
    """A trade as stored."""

    id: str
    symbol: str
    side: TradeSide
    origin: TradeOrigin
    status: TradeStatus
    status_at: datetime | None
    qty: Quantity
    entry_price: Money | None
    exit_price: Money | None
    stop_price: Money | None
    take_profit_price: Money | None
    stop_order_id: str | None
    take_profit_order_id: str | None
    protected_at: datetime | None
    exit_intent: ExitIntent | None
    exit_intent_at: datetime | None
    close_reason: CloseReason | None
    realized_pnl: Money | None
    signal_id: int | None
    workflow_id: str
    opened_at: datetime | None
    closed_at: datetime | None
    created_at: datetime
    updated_at: datetime

    @property
    def is_closed(self) -> bool:
        """True once the trade reached a terminal status."""
        return self.closed_at is not None


class TradeWriteResult(Frozen):
    """The trade after a write, and whether this write changed it."""

    trade: TradeRecord
    applied: bool


class TradeWriteResults(Frozen):
    """Several writes' results, in the order they were asked for."""

    results: list[TradeWriteResult]


class OpenTrades(Frozen):
    """Trades not yet closed, oldest first."""

    trades: list[TradeRecord]


# --- orders --------------------------------------------------------------------------------


class OrderUpsert(Frozen):
    """An order and its latest known state; the first write inserts, newer ones update state.

    State (status, broker id, fills) is replaced only by an update that is newer by
    (broker_updated_at, filled_qty, status progress); the order's terms never change.
    """

    client_order_id: str = Field(min_length=1, max_length=48)
    trade_id: str | None = None
    role: OrderRole
    symbol: str = Field(min_length=1)
    side: OrderSide
    order_type: OrderType
    qty: Quantity = Field(gt=0)
    limit_price: Money | None = Field(default=None, gt=0)
    stop_price: Money | None = Field(default=None, gt=0)
    status: LedgerOrderStatus
    broker_order_id: str | None = None
    filled_qty: Quantity = Field(default=Decimal(0), ge=0)
    filled_avg_price: Money | None = Field(default=None, gt=0)
    submitted_at: AwareDatetime | None = None
    broker_updated_at: AwareDatetime | None = None


class OrderRecord(Frozen):
    """An order as stored."""

    id: int
    client_order_id: str
    broker_order_id: str | None
    trade_id: str | None
    role: OrderRole
    symbol: str
    side: OrderSide
    order_type: OrderType
    qty: Quantity
    limit_price: Money | None
    stop_price: Money | None
    status: LedgerOrderStatus
    filled_qty: Quantity
    filled_avg_price: Money | None
    submitted_at: datetime | None
    broker_updated_at: datetime | None
    created_at: datetime
    updated_at: datetime


class OrderWriteResult(Frozen):
    """The order after an upsert, and whether this write changed it."""

    order: OrderRecord
    applied: bool


# --- signals -------------------------------------------------------------------------------

DEFAULT_SIGNAL_MAX_ATTEMPTS = 3
DEFAULT_SIGNAL_LEASE_SECONDS = 120
DEFAULT_SIGNAL_MAX_AGE_SECONDS = 6 * 3600


class SignalCreate(Frozen):
    """A new signal; a signal_key already stored returns the stored row."""

    signal_key: str = Field(min_length=1)
    symbol: str = Field(min_length=1)
    strategy: str = Field(min_length=1)
    side: OrderSide = OrderSide.BUY
    features: dict[str, JsonScalar] = Field(default_factory=dict)
    created_at: AwareDatetime | None = None  # None: the database's now()


class SignalBatch(Frozen):
    """New signals written in one call; each is idempotent by its signal_key."""

    signals: list[SignalCreate]


class SignalBatchResult(Frozen):
    """How many of the batch were new (the rest were already stored)."""

    inserted: int
    already: int


class SignalRecord(Frozen):
    """A signal as stored."""

    id: int
    signal_key: str
    symbol: str
    strategy: str
    side: OrderSide
    status: SignalStatus
    features: dict[str, JsonScalar]
    score: Decimal | None
    confidence: Decimal | None
    attempts: int
    last_error: str | None
    claimed_until: datetime | None
    created_at: datetime
    scored_at: datetime | None
    updated_at: datetime


class SignalWriteResult(Frozen):
    """The signal after a write, and whether this write changed it."""

    signal: SignalRecord
    applied: bool


class SignalClaim(Frozen):
    """Claim up to `limit` PENDING signals for scoring, leased for `lease_seconds`."""

    limit: int = Field(default=50, ge=1, le=1000)
    lease_seconds: int = Field(default=DEFAULT_SIGNAL_LEASE_SECONDS, ge=1)
    max_attempts: int = Field(default=DEFAULT_SIGNAL_MAX_ATTEMPTS, ge=1)


class SignalScored(Frozen):
    """A signal's score; only a PENDING signal takes it."""

    signal_key: str = Field(min_length=1)
    score: Decimal
    confidence: Decimal = Field(ge=0, le=1)


class SignalFailed(Frozen):
    """A signal that cannot be scored; only a PENDING signal takes it."""

    signal_key: str = Field(min_length=1)
    reason: str = Field(min_length=1)


class SignalExpiry(Frozen):
    """End in ERROR every unclaimed PENDING signal past the attempts cap or the maximum age."""

    max_attempts: int = Field(default=DEFAULT_SIGNAL_MAX_ATTEMPTS, ge=1)
    max_age_seconds: int = Field(default=DEFAULT_SIGNAL_MAX_AGE_SECONDS, ge=1)


class ExpiredSignals(Frozen):
    """The signal keys ended in ERROR by an expiry sweep."""

    signal_keys: list[str]


class SignalFunnelQuery(Frozen):
    """Funnel counts over the last `window_hours` (by created_at) and all time."""

    window_hours: int = Field(default=24, ge=1)


class SignalCounts(Frozen):
    """How many signals were created, and where they are now."""

    created: int
    scored: int
    error: int
    pending: int


class SignalFunnel(Frozen):
    """Signal funnel: recent window and all time."""

    window_hours: int
    recent: SignalCounts
    all_time: SignalCounts


# --- risk events, runs -----------------------------------------------------------------------


class RiskEventCreate(Frozen):
    """A risk event; an event_key already stored returns the stored row."""

    event_key: str = Field(min_length=1)
    kind: str = Field(min_length=1)
    severity: RiskSeverity = RiskSeverity.WARNING
    trade_id: str | None = None
    symbol: str | None = None
    detail: dict[str, JsonScalar] = Field(default_factory=dict)
    at: AwareDatetime | None = None  # None: the database's now()


class RiskEventRecord(Frozen):
    """A risk event as stored."""

    id: int
    event_key: str | None
    at: datetime
    kind: str
    severity: RiskSeverity
    trade_id: str | None
    symbol: str | None
    detail: dict[str, JsonScalar]


class RiskEventWriteResult(Frozen):
    """The risk event after a write, and whether this write inserted it."""

    event: RiskEventRecord
    applied: bool


class ReconcileRunStart(Frozen):
    """A reconcile run begins; a run_id already stored returns the stored row."""

    run_id: str = Field(min_length=1)
    source: str = Field(min_length=1)
    dry_run: bool = False
    started_at: AwareDatetime | None = None


class ReconcileRunFinish(Frozen):
    """A reconcile run ends; the first finish wins."""

    run_id: str = Field(min_length=1)
    checked: int = Field(default=0, ge=0)
    closed: int = Field(default=0, ge=0)
    adopted: int = Field(default=0, ge=0)
    synced: int = Field(default=0, ge=0)
    ok: bool
    error: str | None = None
    duration_ms: int = Field(ge=0)
    finished_at: AwareDatetime | None = None


class ReconcileRunRecord(Frozen):
    """A reconcile run as stored."""

    id: int
    run_id: str
    source: str
    dry_run: bool
    started_at: datetime
    finished_at: datetime | None
    checked: int
    closed: int
    adopted: int
    synced: int
    ok: bool | None
    error: str | None
    duration_ms: int | None


class ReconcileRunWriteResult(Frozen):
    """The reconcile run after a write, and whether this write changed it."""

    run: ReconcileRunRecord
    applied: bool


class EntryRunCreate(Frozen):
    """The outcome of one entry pass; a run_id already stored returns the stored row."""

    run_id: str = Field(min_length=1)
    entered: int = Field(default=0, ge=0)
    skipped: int = Field(default=0, ge=0)
    reason: str = ""
    detail: str = ""
    at: AwareDatetime | None = None


class EntryRunRecord(Frozen):
    """An entry run as stored."""

    id: int
    run_id: str
    at: datetime
    entered: int
    skipped: int
    reason: str
    detail: str


class EntryRunWriteResult(Frozen):
    """The entry run after a write, and whether this write inserted it."""

    run: EntryRunRecord
    applied: bool
