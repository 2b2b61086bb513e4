"""Broker-facing domain models: orders, positions, account, clock, market data, probes.

These are our own types (Decimal money, our enums); broker/alpaca.py converts alpaca-py's
models into them, so nothing above the gateway depends on the SDK.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum

from pydantic import Field

from trading.models import Frozen


class OrderSide(StrEnum):
    """Buy or sell."""

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
    """How long an order stays working."""

    DAY = "day"
    GTC = "gtc"
    IOC = "ioc"
    FOK = "fok"
    OPG = "opg"
    CLS = "cls"


class OrderClass(StrEnum):
    """Simple orders and the multi-leg classes."""

    SIMPLE = "simple"
    BRACKET = "bracket"
    OCO = "oco"
    OTO = "oto"


class OrderStatus(StrEnum):
    """Every order status Alpaca reports."""

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
    # Not one of Alpaca's documented statuses (a newer one; see order_status): neither working
    # nor final, so a probe that meets it waits and looks again - never "absent" or "covered".
    UNKNOWN = "unknown"


def order_status(value: str) -> OrderStatus:
    """The status the broker reported, or UNKNOWN for one this code does not know yet."""
    try:
        return OrderStatus(value)
    except ValueError:
        return OrderStatus.UNKNOWN


# A protective stop in one of these statuses is working (or about to be) at the broker.
ACTIVE_STATUSES = frozenset(
    {
        OrderStatus.NEW,
        OrderStatus.ACCEPTED,
        OrderStatus.PENDING_NEW,
        OrderStatus.HELD,
        OrderStatus.PARTIALLY_FILLED,
        OrderStatus.PENDING_REPLACE,
        OrderStatus.ACCEPTED_FOR_BIDDING,
        OrderStatus.CALCULATED,
    }
)
# Final for the order (done_for_day is final for the day; stopped/suspended do not protect).
TERMINAL_STATUSES = frozenset(
    {
        OrderStatus.FILLED,
        OrderStatus.CANCELED,
        OrderStatus.EXPIRED,
        OrderStatus.REPLACED,
        OrderStatus.REJECTED,
        OrderStatus.DONE_FOR_DAY,
        OrderStatus.STOPPED,
        OrderStatus.SUSPENDED,
    }
)


class OrderIntent(Frozen):
    """An order we intend to place; client_order_id makes it reach the broker at most once."""

    client_order_id: str = Field(min_length=1, max_length=48)
    symbol: str = Field(min_length=1, max_length=16)
    qty: Decimal = Field(gt=0)
    side: OrderSide
    type: OrderType = OrderType.MARKET
    time_in_force: TimeInForce = TimeInForce.DAY
    order_class: OrderClass = OrderClass.SIMPLE
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    trail_percent: Decimal | None = None
    trail_price: Decimal | None = None
    take_profit_limit_price: Decimal | None = None
    stop_loss_stop_price: Decimal | None = None
    stop_loss_limit_price: Decimal | None = None
    extended_hours: bool = False


class BrokerOrder(Frozen):
    """An order as the broker reports it (legs nested under their parent)."""

    id: str
    client_order_id: str
    symbol: str
    side: OrderSide
    type: OrderType
    order_class: OrderClass
    time_in_force: TimeInForce
    status: OrderStatus
    qty: Decimal | None
    filled_qty: Decimal = Decimal(0)
    filled_avg_price: Decimal | None = None
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    created_at: datetime
    updated_at: datetime
    submitted_at: datetime | None = None
    filled_at: datetime | None = None
    canceled_at: datetime | None = None
    expired_at: datetime | None = None
    replaced_by: str | None = None
    replaces: str | None = None
    legs: list[BrokerOrder] = Field(default_factory=list)

    @property
    def is_active(self) -> bool:
        """Working (or about to work) at the broker."""
        return self.status in ACTIVE_STATUSES

    @property
    def is_terminal(self) -> bool:
        """Will not fill any further."""
        return self.status in TERMINAL_STATUSES


class BrokerPosition(Frozen):
    """A position as the broker reports it (qty negative for shorts)."""

    symbol: str
    qty: Decimal
    qty_available: Decimal | None = None
    avg_entry_price: Decimal
    current_price: Decimal | None = None
    market_value: Decimal | None = None
    unrealized_pl: Decimal | None = None


class AssetInfo(Frozen):
    """What the broker says about a symbol."""

    symbol: str
    tradable: bool
    shortable: bool = False
    fractionable: bool = False
    status: str = "active"


class BrokerAccount(Frozen):
    """The account's money and status."""

    status: str
    cash: Decimal
    buying_power: Decimal
    equity: Decimal
    last_equity: Decimal
    trading_blocked: bool = False
    account_blocked: bool = False
    # The effective options level (0 none, 1 covered call / cash-secured put, 2 + long calls
    # and puts, 3 + spreads such as an iron condor); None when the broker did not say.
    options_trading_level: int | None = None
    options_buying_power: Decimal | None = None


class MarketClock(Frozen):
    """The broker's clock: whether the market is open and the next session edges."""

    timestamp: datetime
    is_open: bool
    next_open: datetime
    next_close: datetime


class SessionDay(Frozen):
    """One trading session from the broker calendar (aware datetimes)."""

    date: date
    open: datetime
    close: datetime


class CalendarRequest(Frozen):
    """Sessions between two dates, inclusive."""

    start: date
    end: date


class Quote(Frozen):
    """Latest best bid/offer for a symbol."""

    symbol: str
    bid: Decimal
    ask: Decimal
    bid_size: Decimal = Decimal(0)
    ask_size: Decimal = Decimal(0)
    timestamp: datetime


class Bar(Frozen):
    """One OHLCV bar."""

    symbol: str
    timestamp: datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal


class BarsRequest(Frozen):
    """Bars for symbols at a timeframe (1Min, 5Min, 15Min, 1Hour, 1Day) over a period."""

    symbols: list[str] = Field(min_length=1)
    timeframe: str = "1Day"
    start: datetime
    end: datetime | None = None
    limit: int | None = Field(None, gt=0)


class QuotesRequest(Frozen):
    """Latest quotes for symbols."""

    symbols: list[str] = Field(min_length=1)


class BrokerTruth(Frozen):
    """One consistent look at the broker: account, positions and open orders."""

    account: BrokerAccount
    positions: list[BrokerPosition]
    open_orders: list[BrokerOrder]
    fetched_at: datetime


class ProbeOutcome(StrEnum):
    """A broker question has three answers; *unknown* never counts as *absent*."""

    EXISTS = "exists"
    ABSENT = "absent"
    UNKNOWN = "unknown"


class OrderProbe(Frozen):
    """Does this order exist at the broker, and in what state."""

    outcome: ProbeOutcome
    order: BrokerOrder | None = None
    error: str | None = None


class PositionProbe(Frozen):
    """Does the broker hold a position in this symbol."""

    outcome: ProbeOutcome
    position: BrokerPosition | None = None
    error: str | None = None


class OrderRef(Frozen):
    """Refers to one broker order by broker id."""

    order_id: str


class ClientOrderRef(Frozen):
    """Refers to one order by our client_order_id."""

    client_order_id: str


class SymbolRef(Frozen):
    """Refers to one symbol."""

    symbol: str


class ReplaceRequest(Frozen):
    """New values for a working order (PATCH); unset fields stay as they are."""

    order_id: str
    qty: Decimal | None = Field(None, gt=0)
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    client_order_id: str | None = Field(None, max_length=48)


class CancelResult(Frozen):
    """Outcome of a cancel: the order's final (or pending) state; already-final is success."""

    order: BrokerOrder
    already_final: bool


class ClosePositionRequest(Frozen):
    """Close all or part of a position at market."""

    symbol: str
    qty: Decimal | None = Field(None, gt=0)
    percentage: Decimal | None = Field(None, gt=0, le=100)
