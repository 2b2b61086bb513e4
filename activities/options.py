"""OptionOrderActivities: multi-leg option orders and option quotes as Temporal activities.

Every call is metered as every broker call is (broker/metered.py, through
broker/option_orders.py's MeteredOptionOrders): its slot is taken from the account's
broker-call budget first - reads at READ, an opening order at TRADE, a closing order and any
cancel at PROTECT (closing a structure is risk-reducing, like an exit) - the follow-up requests
it sent (a duplicate's lookup, a cancel's re-read) are charged after, it is counted in
dt_broker_calls_total on its Alpaca route and traced, and a 429 on an order call blocks the
shared budget until the broker's reset.
Broker errors become typed ApplicationErrors (activities/broker.py's as_application_error), so
the named policies' non-retryable types apply to them as to every other broker call.

Marks come from one OptionQuotePoll per worker (broker/option_marks.py): a chain read per
(underlying, expiry) shared by every open structure and kept for `marks_max_age`, so marks
cost the same broker requests however many condors are open. Each request the poll sends
takes one READ slot; a mark served from its cache takes none.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import TypeVar

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.broker import as_application_error
from broker.budget import BrokerBudget
from broker.errors import BrokerError
from broker.option_marks import MARKS_MAX_AGE, OptionQuotePoll
from broker.option_orders import MeteredOptionOrders, OptionOrdersGateway
from trading.broker_budget import Priority
from trading.options.trade_models import (
    MlegOrderIntent,
    OpenOptionOrders,
    OpenOptionOrdersQuery,
    OptionClientOrderRef,
    OptionMarks,
    OptionOrderProbe,
    OptionOrderRef,
    OptionOrderView,
    OptionQuotesRequest,
    is_closing_order,
)

T = TypeVar("T")
OPTION_QUOTE_MISSING = "OptionQuoteMissing"  # a leg without a quote (retried)


class OptionOrderActivities:
    """mleg orders, order probes and latest option quotes, paid for from the shared budget."""

    def __init__(
        self,
        gateway: OptionOrdersGateway,
        budget: BrokerBudget,
        *,
        marks_max_age: timedelta = MARKS_MAX_AGE,
    ) -> None:
        self._gateway = gateway
        self._metered = MeteredOptionOrders(gateway, budget)
        # build_activities makes one of these per worker: one poll serves all its trades.
        self._marks = OptionQuotePoll(gateway, self._marks_read, marks_max_age)

    async def _paid(self, priority: Priority, call: str, fn: Callable[[], T]) -> T:
        try:
            return await self._metered.paid(priority, call, fn)
        except BrokerError as exc:
            raise as_application_error(exc) from None

    async def _marks_read(self, read: Callable[[], T]) -> T:
        """One request of the marks poll, paid like the option_marks call it stands for."""
        return await self._paid(Priority.READ, "option_marks", read)

    @activity.defn
    async def probe_option_order(self, ref: OptionClientOrderRef) -> OptionOrderProbe:
        """exists / absent / unknown for an order by our client_order_id."""
        cid = ref.client_order_id
        return await self._paid(
            Priority.READ, "probe_option_order", lambda: self._gateway.probe_by_client_id(cid)
        )

    @activity.defn
    async def submit_mleg_order(self, intent: MlegOrderIntent) -> OptionOrderView:
        """Place a multi-leg LIMIT order at most once (a duplicate resolves by lookup)."""
        activity.logger.info("submit mleg %s limit %s", intent.client_order_id, intent.limit_price)
        closing = is_closing_order(intent.client_order_id)
        priority = Priority.PROTECT if closing else Priority.TRADE
        return await self._paid(
            priority, "submit_mleg_order", lambda: self._gateway.submit_mleg(intent)
        )

    @activity.defn
    async def open_option_orders(self, query: OpenOptionOrdersQuery) -> OpenOptionOrders:
        """The trade's working mleg orders (by client_order_id prefix), oldest first."""
        prefix = query.prefix
        orders = await self._paid(
            Priority.READ, "open_option_orders", lambda: self._gateway.open_orders(prefix)
        )
        return OpenOptionOrders(orders=orders)

    @activity.defn
    async def get_option_order(self, ref: OptionOrderRef) -> OptionOrderView:
        """One option order by broker id."""
        return await self._paid(
            Priority.READ, "get_option_order", lambda: self._gateway.order(ref.order_id)
        )

    @activity.defn
    async def cancel_option_order(self, ref: OptionOrderRef) -> OptionOrderView:
        """Cancel an option order (already final is fine); the order as it stands after."""
        return await self._paid(
            Priority.PROTECT, "cancel_option_order", lambda: self._gateway.cancel(ref.order_id)
        )

    @activity.defn
    async def option_marks(self, request: OptionQuotesRequest) -> OptionMarks:
        """These option symbols' latest quotes (read at most max_age ago), their session date.

        A symbol the broker did not quote fails the call (OptionQuoteMissing, retried): a
        structure cannot be marked, or its close priced, without every leg.
        """
        marks = await self._marks.marks(request.symbols)
        quoted = {quote.symbol for quote in marks.quotes}
        missing = [symbol for symbol in request.symbols if symbol not in quoted]
        if missing:
            raise ApplicationError(f"no quote for {', '.join(missing)}", type=OPTION_QUOTE_MISSING)
        return marks
