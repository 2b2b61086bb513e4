"""Add-ons: an open trade buys more as one OTO, and one stop then covers the whole position."""

from __future__ import annotations

from decimal import Decimal

import pytest
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import QueryOrderStatus
from alpaca.trading.models import Order
from alpaca.trading.requests import GetOrdersRequest
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.trade_link import TradeLink, TradeLinkActivities
from ledger.audit import AuditLog
from paperbroker.testing import RunningBroker
from tests.integration.trade.conftest import SYMBOL, TradeHarness
from trading.broker_models import OrderClass, OrderSide, OrderType
from trading.ledger_records import OrderRole
from trading.trade_logic import average_entry
from trading.trade_models import AddOn, AddOnRequest
from workflows.trade import TradeWorkflow

pytestmark = pytest.mark.integration


def all_orders(broker: RunningBroker) -> list[Order]:
    """Every order the broker holds (open and closed, legs nested), through alpaca-py."""
    trading = TradingClient(
        broker.key_id, broker.secret_key, paper=True, url_override=broker.trading_url
    )
    orders = trading.get_orders(GetOrdersRequest(status=QueryOrderStatus.ALL, nested=True))
    assert isinstance(orders, list)
    return [o for o in orders if isinstance(o, Order)]


def open_sell_stops(trades: TradeHarness) -> list[tuple[str, Decimal]]:
    """(id, unfilled qty) of every working sell stop in the symbol, legs included."""
    return [
        (o.id, (o.qty or Decimal(0)) - o.filled_qty)
        for order in trades.gateway.get_open_orders()
        for o in (order, *order.legs)
        if o.symbol == SYMBOL and o.side is OrderSide.SELL and o.type is OrderType.STOP
        if o.is_active
    ]


async def test_an_add_on_buys_once_as_an_oto_and_one_stop_covers_the_whole_position(
    trades: TradeHarness, paper_broker: RunningBroker
) -> None:
    handle, view = await trades.open_trade()
    entry_price = view.state.entry_price
    assert entry_price is not None
    add_on = AddOn(qty=Decimal(5), signal_key="sig-add-1", reason="test")

    result = await handle.execute_update(TradeWorkflow.add_on, add_on, id=add_on.signal_key)

    assert result.filled_qty == 5 and result.avg_price is not None
    assert result.position_qty == 15
    position = trades.gateway.probe_position(SYMBOL).position
    assert position is not None and position.qty == 15
    # Exactly one add-on order reached the broker, an OTO carrying the trade's stop.
    buys = [o for o in all_orders(paper_broker) if o.side.value == "buy"]
    add_ons = [o for o in buys if o.client_order_id == result.client_order_id]
    assert len(add_ons) == 1 and len(buys) == 2  # the entry and the add-on
    assert add_ons[0].order_class.value == OrderClass.OTO.value
    assert str(add_ons[0].id) == result.order_id
    # One working stop, for the whole position: the OTO's own stop leg is gone.
    assert open_sell_stops(trades) == [(result.stop_order_id, Decimal(15))]
    assert result.stop_qty == 15
    status = await handle.query(TradeWorkflow.status)
    assert status.state.filled_qty == 15
    assert status.state.entry_price == result.entry_price
    expected = average_entry(Decimal(10), entry_price, Decimal(5), result.avg_price)
    assert result.entry_price == expected
    [record] = status.state.add_ons
    assert record.done and record.stop_leg_id is not None
    assert not trades.gateway.get_order(record.stop_leg_id).is_active
    # The ledger: the add-on order, the trade's quantity and average entry, an audit row.
    ledger_orders = await trades.orders(view.trade_id)
    [recorded] = [o for o in ledger_orders if o.role is OrderRole.ADD_ON]
    assert recorded.client_order_id == result.client_order_id
    assert recorded.filled_qty == 5 and recorded.broker_order_id == result.order_id
    row = await trades.trade_row(view.trade_id)
    assert row.qty == 15 and row.entry_price == result.entry_price
    assert row.stop_order_id == result.stop_order_id
    audits = [
        a
        for a in await AuditLog(trades.pool).recent(200)
        if a.trade_id == view.trade_id and a.action == "add_on"
    ]
    assert len(audits) == 1 and audits[0].reason == add_on.signal_key

    # The same signal again - under the same update id (a retried activity) or a new one
    # (after continue-as-new the run no longer knows the update id) - adds nothing.
    again = await handle.execute_update(TradeWorkflow.add_on, add_on, id=add_on.signal_key)
    other_id = await handle.execute_update(TradeWorkflow.add_on, add_on, id="another-update-id")
    assert again == result and other_id == result
    assert len([o for o in all_orders(paper_broker) if o.side.value == "buy"]) == 2
    position = trades.gateway.probe_position(SYMBOL).position
    assert position is not None and position.qty == 15
    assert open_sell_stops(trades) == [(result.stop_order_id, Decimal(15))]


async def test_an_add_on_through_the_activity_adds_once(
    trades: TradeHarness, paper_broker: RunningBroker
) -> None:
    _, view = await trades.open_trade()
    activities = TradeLinkActivities(TradeLink(trades.client, trades.task_queue))
    request = AddOnRequest(
        trade_id=view.trade_id, add_on=AddOn(qty=Decimal(3), signal_key="sig-activity")
    )
    environment = ActivityEnvironment()
    first = await environment.run(activities.add_on, request)
    retried = await environment.run(activities.add_on, request)
    assert first == retried and first.position_qty == 13 and first.stop_qty == 13
    buys = [o for o in all_orders(paper_broker) if o.side.value == "buy"]
    assert len(buys) == 2
    assert open_sell_stops(trades) == [(first.stop_order_id, Decimal(13))]


async def test_an_add_on_to_an_external_position_is_refused_and_nothing_is_submitted(
    trades: TradeHarness, paper_broker: RunningBroker
) -> None:
    trades.admin.open_position(SYMBOL, 10)
    handle = await trades.start(trades.spec(protect_only=True))
    view = await trades.wait_for(
        handle, lambda v: v.state.stop_order_id is not None and v.state.entry_price is not None
    )
    orders_before = len(all_orders(paper_broker))

    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update(
            TradeWorkflow.add_on, AddOn(qty=Decimal(5), signal_key="sig-ext"), id="sig-ext"
        )
    cause = refused.value.cause
    assert isinstance(cause, ApplicationError)
    assert cause.message == "cannot add to an external position"

    activities = TradeLinkActivities(TradeLink(trades.client, trades.task_queue))
    request = AddOnRequest(
        trade_id=view.trade_id, add_on=AddOn(qty=Decimal(5), signal_key="sig-ext-2")
    )
    with pytest.raises(ApplicationError) as mapped:
        await ActivityEnvironment().run(activities.add_on, request)
    assert mapped.value.non_retryable and mapped.value.type == "AddOnRefused"
    assert mapped.value.message == "cannot add to an external position"

    assert len(all_orders(paper_broker)) == orders_before
    position = trades.gateway.probe_position(SYMBOL).position
    assert position is not None and position.qty == 10
    status = await handle.query(TradeWorkflow.status)
    assert status.state.add_ons == []


async def test_an_add_on_left_half_done_is_finished_by_the_guard(
    trades: TradeHarness, paper_broker: RunningBroker
) -> None:
    handle, _ = await trades.open_trade()
    # Every try of the first cancel (the OTO's stop leg, after the fill) fails: the update
    # gives up with its leg still holding the added shares.
    trades.admin.add_fault(method="DELETE", path="/v2/orders/*", status=500, times=5)
    add_on = AddOn(qty=Decimal(4), signal_key="sig-half")
    with pytest.raises(WorkflowUpdateFailedError) as failed:
        await handle.execute_update(TradeWorkflow.add_on, add_on, id=add_on.signal_key)
    cause = failed.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "AddOnIncomplete"
    # The guard cancels the leg, then sizes one stop for the whole position.
    view = await trades.wait_for(
        handle,
        lambda v: v.state.add_ons[0].done and v.state.last_check_note.startswith("protected"),
        within=45,
    )
    assert view.state.filled_qty == 14
    assert open_sell_stops(trades) == [(view.state.stop_order_id, Decimal(14))]
    assert len([o for o in all_orders(paper_broker) if o.side.value == "buy"]) == 2
