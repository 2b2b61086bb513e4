"""OptionOrderActivities: multi-leg option orders and option quotes as Temporal activities.

Synchronous methods (the worker's thread pool runs them); broker errors become typed
ApplicationErrors (activities/broker.py's as_application_error), so the named policies'
non-retryable types apply to them as to every other broker call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from temporalio import activity

from activities.broker import as_application_error
from broker.errors import BrokerError
from broker.option_orders import OptionOrdersGateway
from trading.options.trade_models import (
    MlegOrderIntent,
    OptionClientOrderRef,
    OptionMarks,
    OptionOrderProbe,
    OptionOrderRef,
    OptionOrderView,
    OptionQuotesRequest,
)

T = TypeVar("T")


def _translate(call: Callable[[], T]) -> T:
    try:
        return call()
    except BrokerError as exc:
        raise as_application_error(exc) from None


class OptionOrderActivities:
    """mleg orders, order probes and latest option quotes, through one gateway."""

    def __init__(self, gateway: OptionOrdersGateway) -> None:
        self._gateway = gateway

    @activity.defn
    def probe_option_order(self, ref: OptionClientOrderRef) -> OptionOrderProbe:
        """exists / absent / unknown for an order by our client_order_id (never raises)."""
        return self._gateway.probe_by_client_id(ref.client_order_id)

    @activity.defn
    def submit_mleg_order(self, intent: MlegOrderIntent) -> OptionOrderView:
        """Place a multi-leg LIMIT order at most once (a duplicate resolves by lookup)."""
        activity.logger.info("submit mleg %s limit %s", intent.client_order_id, intent.limit_price)
        return _translate(lambda: self._gateway.submit_mleg(intent))

    @activity.defn
    def get_option_order(self, ref: OptionOrderRef) -> OptionOrderView:
        """One option order by broker id."""
        return _translate(lambda: self._gateway.order(ref.order_id))

    @activity.defn
    def cancel_option_order(self, ref: OptionOrderRef) -> OptionOrderView:
        """Cancel an option order (already final is fine); the order as it stands after."""
        return _translate(lambda: self._gateway.cancel(ref.order_id))

    @activity.defn
    def option_marks(self, request: OptionQuotesRequest) -> OptionMarks:
        """The latest quotes of these option symbols and the session date they are of."""
        return _translate(lambda: self._gateway.latest_quotes(request.symbols))
