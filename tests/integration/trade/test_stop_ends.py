"""A stop the broker expires or rejects on its own is replaced like a cancelled one."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from decimal import Decimal

import pytest

from paperbroker.admin_client import AdminClient
from tests.integration.trade.conftest import TradeHarness
from trading.broker_models import OrderStatus, OrderType
from trading.ledger_records import TradeStatus

pytestmark = pytest.mark.integration
logger = logging.getLogger("tests.trade")


@pytest.mark.parametrize(
    ("end", "status"),
    [
        (AdminClient.expire_order, OrderStatus.EXPIRED),
        (AdminClient.reject_order, OrderStatus.REJECTED),
    ],
    ids=["expired", "rejected"],
)
async def test_a_stop_ended_by_the_broker_is_replaced_by_a_new_active_stop(
    trades: TradeHarness, end: Callable[[AdminClient, str], object], status: OrderStatus
) -> None:
    handle, view = await trades.open_trade()
    original = view.state.stop_order_id
    assert original is not None
    end(trades.admin, original)
    started = time.monotonic()
    rescued = await trades.wait_for(
        handle, lambda v: v.state.stop_order_id != original and v.state.rescue.ok == 1
    )
    logger.info("stop rescue latency after %s: %.2f s", status.value, time.monotonic() - started)
    assert trades.gateway.get_order(original).status is status
    stop = trades.gateway.get_order(rescued.state.stop_order_id or "")
    assert stop.is_active and stop.type is OrderType.STOP and stop.qty == Decimal(10)
    assert stop.client_order_id == f"{view.trade_id}.rs.0"
    row = await trades.settled(
        lambda: trades.trade_row(view.trade_id), lambda r: r.stop_order_id == stop.id
    )
    assert row.status is TradeStatus.OPEN and row.stop_order_id == stop.id
