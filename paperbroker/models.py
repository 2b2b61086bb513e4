"""The broker's own state: orders, positions and the account, as mutable pydantic models."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, Field

from paperbroker.clock import ClockState
from paperbroker.prices import Segment, SymbolParams


class Side(StrEnum):
    """Order side."""

    BUY = "buy"
    SELL = "sell"


class OrderType(StrEnum):
    """Order types Alpaca accepts for equities."""

    MARKET = "market"
    LIMIT = "limit"
    STOP = "stop"
    STOP_LIMIT = "stop_limit"
    TRAILING_STOP = "trailing_stop"


class TimeInForce(StrEnum):
    """Time in force values for equities."""

    DAY = "day"
    GTC = "gtc"
    OPG = "opg"
    CLS = "cls"
    IOC = "ioc"
    FOK = "fok"


class OrderClass(StrEnum):
    """Order classes for equities."""

    SIMPLE = "simple"
    BRACKET = "bracket"
    OCO = "oco"
    OTO = "oto"
    MLEG = "mleg"


class LegRole(StrEnum):
    """Which exit a leg of a complex order is."""

    TAKE_PROFIT = "take_profit"
    STOP_LOSS = "stop_loss"


class Status(StrEnum):
    """Every order status Alpaca documents (and alpaca-py 0.44 parses)."""

    NEW = "new"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    DONE_FOR_DAY = "done_for_day"
    CANCELED = "canceled"
    EXPIRED = "expired"
    REPLACED = "replaced"
    PENDING_CANCEL = "pending_cancel"
    PENDING_REPLACE = "pending_replace"
    PENDING_REVIEW = "pending_review"
    ACCEPTED = "accepted"
    PENDING_NEW = "pending_new"
    ACCEPTED_FOR_BIDDING = "accepted_for_bidding"
    STOPPED = "stopped"
    REJECTED = "rejected"
    SUSPENDED = "suspended"
    CALCULATED = "calculated"
    HELD = "held"


# Everything not final is "open": listed by status=open, cancelable, holding shares.
OPEN_STATUSES = frozenset(
    {
        Status.NEW,
        Status.PARTIALLY_FILLED,
        Status.ACCEPTED,
        Status.PENDING_NEW,
        Status.HELD,
        Status.PENDING_CANCEL,
        Status.PENDING_REPLACE,
        Status.DONE_FOR_DAY,
        Status.PENDING_REVIEW,
        Status.ACCEPTED_FOR_BIDDING,
        Status.STOPPED,
        Status.SUSPENDED,
        Status.CALCULATED,
    }
)


class PendingChange(BaseModel):
    """A cancel or replace the broker has answered but not yet carried out."""

    action: Literal["cancel", "replace"]
    resume_status: Status
    replacement_id: UUID | None = None
    filled_qty: Decimal = Decimal(0)
    explicit_qty: bool = False
    by_broker: bool = False


class OrderRecord(BaseModel):
    """One order as the broker keeps it, including internal links between legs."""

    id: UUID
    client_order_id: str
    symbol: str
    asset_id: UUID
    side: Side
    type: OrderType
    time_in_force: TimeInForce
    order_class: OrderClass
    qty: Decimal | None = None
    notional: Decimal | None = None
    filled_qty: Decimal = Decimal(0)
    filled_avg_price: Decimal | None = None
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    trail_price: Decimal | None = None
    trail_percent: Decimal | None = None
    hwm: Decimal | None = None
    status: Status
    extended_hours: bool = False
    created_at: datetime
    updated_at: datetime
    submitted_at: datetime
    filled_at: datetime | None = None
    expired_at: datetime | None = None
    expires_at: datetime | None = None
    canceled_at: datetime | None = None
    failed_at: datetime | None = None
    replaced_at: datetime | None = None
    replaced_by: UUID | None = None
    replaces: UUID | None = None
    parent_id: UUID | None = None
    leg_ids: list[UUID] = Field(default_factory=list)
    leg_role: LegRole | None = None
    oco_peer_id: UUID | None = None
    working: bool = False
    activated: bool = True
    triggered: bool = False
    session_day: date | None = None
    seq: int = 0
    pending: PendingChange | None = None
    replacement_in_flight: bool = False
    paused_from: Status | None = None
    reject_next: list[Literal["cancel", "replace"]] = Field(default_factory=list)
    # Options (paperbroker/options_orders.py): "us_option" orders are priced by the option
    # pricer, never by the stock matcher; mleg legs carry their ratio to the parent's qty.
    asset_class: Literal["us_equity", "us_option"] = "us_equity"
    position_intent: str | None = None
    ratio_qty: Decimal | None = None

    @property
    def is_open(self) -> bool:
        """Return True while the order can still execute or be cancelled."""
        return self.status in OPEN_STATUSES

    @property
    def remaining(self) -> Decimal:
        """Return the unfilled quantity."""
        return (self.qty or Decimal(0)) - self.filled_qty


class PositionRecord(BaseModel):
    """A position: signed quantity and average entry price."""

    symbol: str
    asset_id: UUID
    qty: Decimal
    avg_entry_price: Decimal


class OptionPositionRecord(BaseModel):
    """An option position: signed contracts and the average premium per share."""

    symbol: str
    qty: Decimal
    avg_entry_price: Decimal


def after_fill(
    qty: Decimal, avg_entry: Decimal, signed: Decimal, price: Decimal
) -> tuple[Decimal, Decimal]:
    """A position's (qty, average entry price) after `signed` units at `price`, for stock and
    option positions alike: adding to it (or opening from flat) averages the entry price,
    reducing it keeps the price, crossing through zero starts the new side at `price`. A qty
    of 0 means the position is gone."""
    new_qty = qty + signed
    if new_qty == 0:
        return new_qty, avg_entry
    if qty == 0 or (qty > 0) == (signed > 0):
        cost = avg_entry * abs(qty) + price * abs(signed)
        return new_qty, (cost / abs(new_qty)).quantize(Decimal("0.0001"))
    if (qty > 0) != (new_qty > 0):
        return new_qty, price
    return new_qty, avg_entry


class AccountRecord(BaseModel):
    """Cash and identity of the single paper account."""

    id: UUID
    account_number: str
    created_at: datetime
    cash: Decimal
    last_equity: Decimal
    last_equity_day: date | None = None


class BrokerSnapshot(BaseModel):
    """Everything needed to resume the broker after a restart."""

    version: int = 1
    account: AccountRecord
    orders: list[OrderRecord]
    positions: list[PositionRecord]
    last_processed: datetime
    seq: int
    clock: ClockState
    symbols: list[SymbolParams]
    segments: dict[str, list[Segment]]
