"""OptionOrderActivities: multi-leg option orders and option quotes as Temporal activities.

Every call first takes its slot from the account's broker-call budget (broker/budget.py, the
one MeteredGateway spends): reads at READ, an opening order and its cancel at TRADE, a closing
order and its cancel at PROTECT (closing a structure is risk-reducing, like an exit). The
follow-up requests a call sent (a duplicate's lookup, a cancel's re-read) are charged after.
Broker errors become typed ApplicationErrors (activities/broker.py's as_application_error), so
the named policies' non-retryable types apply to them as to every other broker call.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

from temporalio import activity

from activities.broker import as_application_error
from broker.budget import BrokerBudget
from broker.errors import BrokerError
from broker.metered import BROKER_THREADS
from broker.option_orders import OptionOrdersGateway
from broker.rate_limits import RequestTally
from trading.broker_budget import Priority
from trading.options.trade_models import (
    MlegOrderIntent,
    OptionClientOrderRef,
    OptionMarks,
    OptionOrderProbe,
    OptionOrderRef,
    OptionOrderView,
    OptionQuotesRequest,
    is_closing_order,
)

T = TypeVar("T")


class OptionOrderActivities:
    """mleg orders, order probes and latest option quotes, paid for from the shared budget."""

    def __init__(self, gateway: OptionOrdersGateway, budget: BrokerBudget) -> None:
        self._gateway = gateway
        self._budget = budget

    async def _paid(self, priority: Priority, call: str, fn: Callable[[], T]) -> T:
        tally = RequestTally()
        try:
            await self._budget.acquire(priority, call)
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(BROKER_THREADS, self._tallied, tally, fn)
        except BrokerError as exc:
            raise as_application_error(exc) from None
        finally:
            if tally.sent > 1:
                await self._budget.charge(priority, call, tally.sent - 1)

    def _tallied(self, tally: RequestTally, fn: Callable[[], T]) -> T:
        with self._gateway.rate_limits.tallying(tally):
            return fn()

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
        """The latest quotes of these option symbols and the session date they are of."""
        symbols = request.symbols
        return await self._paid(
            Priority.READ, "option_marks", lambda: self._gateway.latest_quotes(symbols)
        )
