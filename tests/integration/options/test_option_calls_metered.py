"""The option activities are metered as every broker call is (broker/metered.py): a 429 on an
mleg order stops every caller of the account's budget until the broker's reset, and nothing
is sent meanwhile. (Their counts on the Alpaca routes are read from a Prometheus scrape in
tests/integration/ops/test_option_metrics.py.)"""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
from temporalio.exceptions import ApplicationError

from activities.options import OptionOrderActivities
from broker.budget import BrokerBudget
from broker.endpoint import BrokerEndpoint
from broker.errors import BudgetExhausted
from broker.option_orders import OptionOrdersGateway
from paperbroker.admin_client import AdminClient
from tests.integration.options.conftest import LONG_CALL, LONG_PUT, SHORT_CALL, SHORT_PUT
from trading.broker_budget import BudgetConfig, Priority
from trading.broker_models import OrderSide
from trading.options.trade_models import MlegOrderIntent, OptionClientOrderRef, OptionLeg

pytestmark = pytest.mark.integration


def _opening(cid: str) -> MlegOrderIntent:
    buy, sell = OrderSide.BUY, OrderSide.SELL
    return MlegOrderIntent(
        client_order_id=cid,
        qty=1,
        legs=[
            OptionLeg(symbol=symbol, side=side)
            for symbol, side in zip(
                (LONG_PUT, SHORT_PUT, SHORT_CALL, LONG_CALL), (buy, sell, sell, buy), strict=True
            )
        ],
        limit_price=Decimal("-0.50"),
    )


async def test_a_429_on_an_mleg_order_blocks_the_shared_budget_until_the_reset(
    broker_endpoint: BrokerEndpoint, broker_admin: AdminClient
) -> None:
    gateway = OptionOrdersGateway(broker_endpoint)
    budget = BrokerBudget.for_endpoint(None, broker_endpoint, BudgetConfig())  # this test's own
    activities = OptionOrderActivities(gateway, budget)
    cid = f"metered-{uuid.uuid4().hex[:12]}"
    rule = broker_admin.add_fault(method="POST", path="/v2/orders", status=429, times=1)
    try:
        with pytest.raises(ApplicationError) as refused:
            await activities.submit_mleg_order(_opening(cid))
    finally:
        if rule in _rule_ids(broker_admin):  # left only when the submit never reached the broker
            broker_admin.remove_fault(rule)
    assert refused.value.type == "RateLimited"
    view = await budget.view()
    assert view.blocked_until is not None and "submit_mleg_order" in (view.blocked_reason or "")
    sent = gateway.rate_limits.requests_sent
    with pytest.raises(ApplicationError) as waiting:
        await activities.probe_option_order(OptionClientOrderRef(client_order_id=cid))
    assert waiting.value.type == BudgetExhausted.__name__
    assert gateway.rate_limits.requests_sent == sent  # nothing went to the broker meanwhile
    with pytest.raises(BudgetExhausted):
        await budget.acquire(Priority.PROTECT, "any call")  # every caller of the budget waits


def _rule_ids(admin: AdminClient) -> set[str]:
    return {str(rule["id"]) for rule in admin.faults()}
