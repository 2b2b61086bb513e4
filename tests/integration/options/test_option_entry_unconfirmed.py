"""A FORCE_EXIT before the workflow has seen its entry order ends the entry only once the
broker says that order is absent: an order that landed (its answer lost, or sent by an earlier
run of the same trade) is found, and what it opened is closed - never left unmanaged."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from alpaca.trading.enums import OrderStatus as SdkOrderStatus

from contracts.option_trade import workflow_id
from tests.integration.options.conftest import MONTHLY, OptionHarness, marketable_spec
from trading.options.trade_models import (
    FORCED_EXIT,
    OptionForceExit,
    OptionTradeInput,
    OptionTradeResult,
    OptionTradeStatus,
    close_intent,
    entry_intent,
    natural_debit,
    opening_legs,
)
from workflows.option_trade import OptionTradeWorkflow


async def test_an_entry_that_landed_unseen_is_closed_on_force_exit(
    option_trades: OptionHarness,
) -> None:
    spec = marketable_spec(option_trades, MONTHLY, check_interval=timedelta(minutes=10))
    first = entry_intent(spec, 0)
    assert first is not None
    # The opening order is at the broker (filled) before the workflow has sent anything.
    landed = option_trades.options.submit_mleg(first)
    assert landed.client_order_id == f"{spec.trade_id}-open-0"
    assert len(option_trades.option_positions()) == 4

    handle = await option_trades.client.start_workflow(
        OptionTradeWorkflow.run,
        OptionTradeInput(spec=spec),
        id=workflow_id(spec.trade_id),
        task_queue=option_trades.task_queue,
        start_signal="option_trade.force_exit",
        start_signal_args=[OptionForceExit(reason="exit before the entry was seen")],
    )
    option_trades.handles.append(handle)
    result: OptionTradeResult = await handle.result()

    assert result.status is OptionTradeStatus.CLOSED and result.exit_reason == FORCED_EXIT
    assert result.credit is not None and result.credit > 0
    assert option_trades.option_positions() == {}
    orders = option_trades.mleg_orders(spec.trade_id)
    opens = [o for o in orders if o.client_order_id.startswith(f"{spec.trade_id}-open-")]
    closes = [o for o in orders if o.client_order_id.startswith(f"{spec.trade_id}-close-")]
    assert [str(o.id) for o in opens] == [landed.id]  # found, not sent again
    assert [o.status for o in closes] == [SdkOrderStatus.FILLED]


async def test_an_entry_never_sent_ends_on_force_exit_with_nothing_open(
    option_trades: OptionHarness,
) -> None:
    spec = marketable_spec(option_trades, MONTHLY)
    handle = await option_trades.client.start_workflow(
        OptionTradeWorkflow.run,
        OptionTradeInput(spec=spec),
        id=workflow_id(spec.trade_id),
        task_queue=option_trades.task_queue,
        start_signal="option_trade.force_exit",
        start_signal_args=[OptionForceExit(reason="changed my mind")],
    )
    option_trades.handles.append(handle)
    result: OptionTradeResult = await handle.result()

    assert result.status is OptionTradeStatus.ENTRY_FAILED
    assert option_trades.mleg_orders(spec.trade_id) == []
    assert option_trades.option_positions() == {}


async def test_a_close_that_landed_unseen_ends_the_trade_with_its_fill(
    option_trades: OptionHarness,
) -> None:
    """The close's own client order id is looked up before the legs are: a closing order whose
    answer was lost (and that filled) ends the trade with its real debit and P&L, not as
    `closed_outside` with no price."""
    spec = marketable_spec(option_trades, MONTHLY, check_interval=timedelta(minutes=10))
    handle = await option_trades.start(spec)
    view = await option_trades.wait_for(handle, lambda v: v.status is OptionTradeStatus.OPEN)
    credit = view.state.credit
    assert credit is not None
    legs = opening_legs(spec.plan)
    debit = natural_debit(legs, option_trades.options.latest_quotes(MONTHLY.symbols))
    closed = option_trades.options.submit_mleg(close_intent(spec, debit + Decimal("0.05"), 0))
    assert option_trades.option_positions() == {}  # the close filled at the broker

    await handle.signal(OptionTradeWorkflow.force_exit, OptionForceExit(reason="test"))
    result: OptionTradeResult = await handle.result()

    assert result.status is OptionTradeStatus.CLOSED and result.exit_reason == FORCED_EXIT
    fill = option_trades.options.order(closed.id).filled_avg_price
    assert fill is not None and result.exit_debit == fill
    assert result.realized_pnl == (credit - fill) * 100
    closes = [
        o
        for o in option_trades.mleg_orders(spec.trade_id)
        if o.client_order_id.startswith(f"{spec.trade_id}-close-")
    ]
    assert len(closes) == 1
