"""A close goes out only for legs still held: legs closed outside never make it open new ones."""

from __future__ import annotations

from datetime import timedelta

from tests.integration.options.conftest import (
    LONG_CALL,
    LONG_PUT,
    SHORT_CALL,
    SHORT_PUT,
    OptionHarness,
)
from trading.options.legs import CLOSED_OUTSIDE
from trading.options.trade_models import OptionForceExit, OptionTradeResult, OptionTradeStatus
from workflows.option_trade import OptionTradeWorkflow


async def test_a_broken_condor_holds_its_close_back_and_ends_once_its_legs_are_gone(
    option_trades: OptionHarness,
) -> None:
    spec = option_trades.spec(check_interval=timedelta(seconds=1))
    handle = await option_trades.start(spec)
    await option_trades.wait_for(handle, lambda v: v.status is OptionTradeStatus.OPEN)

    # Someone buys the short call back at the broker: three legs left.
    option_trades.trading.close_position(SHORT_CALL)
    await handle.signal(OptionTradeWorkflow.force_exit, OptionForceExit(reason="test"))
    view = await option_trades.wait_for(handle, lambda v: v.state.legs_mismatch is not None)
    assert view.status is OptionTradeStatus.CLOSING
    assert f"{SHORT_CALL} held 0 expected -1" in (view.state.legs_mismatch or "")
    assert "close held back" in view.state.note
    closes = [
        o
        for o in option_trades.mleg_orders(spec.trade_id)
        if o.client_order_id.startswith(f"{spec.trade_id}-close-")
    ]
    assert closes == []  # a closing mleg now would open a new long call
    assert set(option_trades.option_positions()) == {LONG_PUT, SHORT_PUT, LONG_CALL}

    for symbol in (LONG_PUT, SHORT_PUT, LONG_CALL):
        option_trades.trading.close_position(symbol)
    result: OptionTradeResult = await handle.result()

    assert result.status is OptionTradeStatus.CLOSED
    assert result.exit_reason == CLOSED_OUTSIDE and result.realized_pnl is None
    assert option_trades.option_positions() == {}
    assert not [
        o
        for o in option_trades.mleg_orders(spec.trade_id)
        if o.client_order_id.startswith(f"{spec.trade_id}-close-")
    ]
