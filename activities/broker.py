"""BrokerActivities: every broker call as a Temporal activity, metered, errors as typed failures."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from temporalio import activity
from temporalio.exceptions import ApplicationError

from broker.errors import BrokerError, BudgetExhausted, InsufficientQty, RateLimited
from broker.metered import MeteredGateway
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
    if isinstance(exc, BudgetExhausted):  # not sent: the next slot, not a backoff, decides
        delay = max(exc.retry_after, MIN_RATE_LIMIT_WAIT)
        details["retry_after_s"] = exc.retry_after.total_seconds()
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


async def _translate(call: Awaitable[T]) -> T:
    try:
        return await call
    except (BrokerError, TradingInputError) as exc:
        raise as_application_error(exc) from None


class BrokerActivities:
    """Broker calls as activities, each through the metered gateway (the account's budget).

    The methods stay synchronous (run on the worker's thread pool; the workflows name them as
    sync methods): each hands its call to the event loop that the metered gateway and its
    budget's PostgreSQL pool belong to, and waits there for the answer.
    """

    def __init__(self, broker: MeteredGateway, loop: asyncio.AbstractEventLoop) -> None:
        self._broker = broker
        self._loop = loop

    def _run(self, call: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(_translate(call), self._loop).result()

    @activity.defn
    def get_account(self) -> BrokerAccount:
        """The account."""
        return self._run(self._broker.get_account())

    @activity.defn
    def get_clock(self) -> MarketClock:
        """The market clock."""
        return self._run(self._broker.get_clock())

    @activity.defn
    def get_calendar(self, request: CalendarRequest) -> list[SessionDay]:
        """Trading sessions between two dates."""
        return self._run(self._broker.get_calendar(request.start, request.end))

    @activity.defn
    def get_positions(self) -> list[BrokerPosition]:
        """All open positions."""
        return self._run(self._broker.get_positions())

    @activity.defn
    def probe_position(self, ref: SymbolRef) -> PositionProbe:
        """exists / absent / unknown for one symbol's position."""
        return self._run(self._broker.probe_position(ref.symbol))

    @activity.defn
    def get_open_orders(self) -> list[BrokerOrder]:
        """All open orders."""
        return self._run(self._broker.get_open_orders())

    @activity.defn
    def get_broker_truth(self) -> BrokerTruth:
        """Account, positions and open orders in one snapshot; any failure fails it whole."""
        return self._run(self._broker.broker_truth())

    @activity.defn
    def get_order(self, ref: OrderRef) -> BrokerOrder:
        """One order by broker id."""
        return self._run(self._broker.get_order(ref.order_id))

    @activity.defn
    def probe_order(self, ref: OrderRef) -> OrderProbe:
        """exists / absent / unknown for one order."""
        return self._run(self._broker.probe_order(ref.order_id))

    @activity.defn
    def get_order_by_client_id(self, ref: ClientOrderRef) -> BrokerOrder:
        """One order by client_order_id."""
        return self._run(self._broker.get_order_by_client_id(ref.client_order_id))

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
        return self._run(self._broker.submit_order(intent))

    @activity.defn
    def cancel_order(self, ref: OrderRef) -> CancelResult:
        """Cancel (idempotent)."""
        return self._run(self._broker.cancel_order(ref.order_id))

    @activity.defn
    def replace_order(self, request: ReplaceRequest) -> BrokerOrder:
        """Replace a working order."""
        return self._run(self._broker.replace_order(request))

    @activity.defn
    def close_position(self, request: ClosePositionRequest) -> BrokerOrder:
        """Close all or part of a position at market."""
        qty = str(request.qty) if request.qty is not None else None
        pct = str(request.percentage) if request.percentage is not None else None
        return self._run(self._broker.close_position(request.symbol, qty, pct))

    @activity.defn
    def latest_quotes(self, request: QuotesRequest) -> list[Quote]:
        """Latest quote per symbol."""
        return self._run(self._broker.latest_quotes(request.symbols))

    @activity.defn
    def get_bars(self, request: BarsRequest) -> list[Bar]:
        """Bars for symbols."""
        end = request.end.isoformat() if request.end else None
        return self._run(
            self._broker.get_bars(
                request.symbols, request.timeframe, request.start.isoformat(), end, request.limit
            )
        )
