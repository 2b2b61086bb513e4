"""BrokerActivities: every broker call as a Temporal activity, errors as typed failures."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from temporalio import activity
from temporalio.exceptions import ApplicationError

from broker.errors import BrokerError, InsufficientQty, RateLimited
from broker.gateway import BrokerGateway
from broker.truth import broker_truth
from trading.broker_models import (
    Bar,
    BarsRequest,
    BrokerAccount,
    BrokerOrder,
    BrokerPosition,
    BrokerTruth,
    CalendarRequest,
    CancelResult,
    ClientOrderRef,
    ClosePositionRequest,
    MarketClock,
    OrderIntent,
    OrderProbe,
    OrderRef,
    PositionProbe,
    Quote,
    QuotesRequest,
    ReplaceRequest,
    SessionDay,
    SymbolRef,
)
from trading.errors import TradingInputError

T = TypeVar("T")
MIN_RATE_LIMIT_WAIT = timedelta(milliseconds=500)


def as_application_error(exc: BrokerError | TradingInputError) -> ApplicationError:
    """A Temporal failure named after the error class, carrying the broker's message."""
    if isinstance(exc, TradingInputError):
        return ApplicationError(str(exc), type=type(exc).__name__, non_retryable=True)
    details: dict[str, object] = {"status": exc.status, "code": exc.code}
    delay: timedelta | None = None
    if isinstance(exc, RateLimited) and exc.reset_at is not None:
        delay = max(exc.reset_at - datetime.now(UTC), MIN_RATE_LIMIT_WAIT)
        details["reset_at"] = exc.reset_at.isoformat()
    if isinstance(exc, InsufficientQty):
        details["available"] = str(exc.available) if exc.available is not None else None
        details["held_for_orders"] = (
            str(exc.held_for_orders) if exc.held_for_orders is not None else None
        )
    return ApplicationError(
        exc.message,
        details,
        type=type(exc).__name__,
        non_retryable=not exc.retryable,
        next_retry_delay=delay,
    )


def _translate(fn: Callable[[], T]) -> T:
    try:
        return fn()
    except (BrokerError, TradingInputError) as exc:
        raise as_application_error(exc) from None


class BrokerActivities:
    """Synchronous activities (run on the worker's thread pool) over a BrokerGateway."""

    def __init__(self, gateway: BrokerGateway) -> None:
        self._gateway = gateway

    @activity.defn
    def get_account(self) -> BrokerAccount:
        """The account."""
        return _translate(self._gateway.get_account)

    @activity.defn
    def get_clock(self) -> MarketClock:
        """The market clock."""
        return _translate(self._gateway.get_clock)

    @activity.defn
    def get_calendar(self, request: CalendarRequest) -> list[SessionDay]:
        """Trading sessions between two dates."""
        return _translate(lambda: self._gateway.get_calendar(request.start, request.end))

    @activity.defn
    def get_positions(self) -> list[BrokerPosition]:
        """All open positions."""
        return _translate(self._gateway.get_positions)

    @activity.defn
    def probe_position(self, ref: SymbolRef) -> PositionProbe:
        """exists / absent / unknown for one symbol's position."""
        return self._gateway.probe_position(ref.symbol)

    @activity.defn
    def get_open_orders(self) -> list[BrokerOrder]:
        """All open orders."""
        return _translate(self._gateway.get_open_orders)

    @activity.defn
    def get_broker_truth(self) -> BrokerTruth:
        """Account, positions and open orders in one snapshot; any failure fails it whole."""
        return _translate(lambda: broker_truth(self._gateway))

    @activity.defn
    def get_order(self, ref: OrderRef) -> BrokerOrder:
        """One order by broker id."""
        return _translate(lambda: self._gateway.get_order(ref.order_id))

    @activity.defn
    def probe_order(self, ref: OrderRef) -> OrderProbe:
        """exists / absent / unknown for one order."""
        return self._gateway.probe_order(ref.order_id)

    @activity.defn
    def get_order_by_client_id(self, ref: ClientOrderRef) -> BrokerOrder:
        """One order by client_order_id."""
        return _translate(lambda: self._gateway.get_order_by_client_id(ref.client_order_id))

    @activity.defn
    def submit_order(self, intent: OrderIntent) -> BrokerOrder:
        """Place an order at most once (duplicates resolve to the existing order)."""
        activity.logger.info(
            "submit %s: %s %s %s x%s",
            intent.client_order_id,
            intent.order_class,
            intent.side,
            intent.symbol,
            intent.qty,
        )
        return _translate(lambda: self._gateway.submit_order(intent))

    @activity.defn
    def cancel_order(self, ref: OrderRef) -> CancelResult:
        """Cancel (idempotent)."""
        return _translate(lambda: self._gateway.cancel_order(ref.order_id))

    @activity.defn
    def replace_order(self, request: ReplaceRequest) -> BrokerOrder:
        """Replace a working order."""
        return _translate(lambda: self._gateway.replace_order(request))

    @activity.defn
    def close_position(self, request: ClosePositionRequest) -> BrokerOrder:
        """Close all or part of a position at market."""
        qty = str(request.qty) if request.qty is not None else None
        pct = str(request.percentage) if request.percentage is not None else None
        return _translate(lambda: self._gateway.close_position(request.symbol, qty, pct))

    @activity.defn
    def latest_quotes(self, request: QuotesRequest) -> list[Quote]:
        """Latest quote per symbol."""
        return _translate(lambda: self._gateway.latest_quotes(request.symbols))

    @activity.defn
    def get_bars(self, request: BarsRequest) -> list[Bar]:
        """Bars for symbols."""
        end = request.end.isoformat() if request.end else None
        return _translate(
            lambda: self._gateway.get_bars(
                request.symbols, request.timeframe, request.start.isoformat(), end, request.limit
            )
        )
