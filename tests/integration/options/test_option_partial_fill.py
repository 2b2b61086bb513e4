"""An entry cancelled with part of it filled opens that part: the trade holds, closes and
books exactly what filled (the paper broker's admin fill makes the partial fill)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from alpaca.trading.enums import OrderStatus as SdkOrderStatus

from ledger.option_trades import OptionTrades
from tests.integration.options.conftest import MONTHLY, OptionHarness, marketable_spec
from trading.options.trade_models import OptionForceExit, OptionTradeResult, OptionTradeStatus
from workflows.option_trade import OptionTradeWorkflow


async def test_a_partly_filled_entry_opens_and_closes_what_filled(
    option_trades: OptionHarness,
) -> None:
    natural = marketable_spec(option_trades, MONTHLY).limit_credit
    asked = natural + Decimal("0.50")  # more credit than the market gives: it works, unfilled
    spec = marketable_spec(
        option_trades,
        MONTHLY,
        qty=3,
        limit_credit=asked,
        entry_wait=timedelta(seconds=3),
        check_interval=timedelta(minutes=10),
    )
    handle = await option_trades.start(spec)
    view = await option_trades.wait_for(handle, lambda v: v.state.entry_order_id is not None)
    entry_id = view.state.entry_order_id
    assert entry_id is not None
    option_trades.admin.fill_order(entry_id, qty=2)  # 2 of 3 units fill at the limit

    view = await option_trades.wait_for(handle, lambda v: v.status is OptionTradeStatus.OPEN)
    assert view.state.open_qty == 2 and view.state.credit == asked
    held = option_trades.option_positions()
    assert {symbol: abs(qty) for symbol, qty in held.items()} == dict.fromkeys(MONTHLY.symbols, 2)
    entry = option_trades.trading.get_order_by_id(entry_id)
    assert entry.status is SdkOrderStatus.CANCELED and Decimal(str(entry.filled_qty)) == 2
    opens = [
        o
        for o in option_trades.mleg_orders(spec.trade_id)
        if o.client_order_id.startswith(f"{spec.trade_id}-open-")
    ]
    assert len(opens) == 1  # nothing more was sent for the third unit
    row = await OptionTrades(option_trades.pool).get(spec.trade_id)
    assert row is not None and row.qty == 2
    assert row.max_loss == (spec.plan.width - asked) * 100 * 2

    await handle.signal(OptionTradeWorkflow.force_exit, OptionForceExit(reason="test"))
    result: OptionTradeResult = await handle.result()

    assert result.status is OptionTradeStatus.CLOSED and result.exit_debit is not None
    assert result.realized_pnl == (asked - result.exit_debit) * 100 * 2
    assert option_trades.option_positions() == {}
    closes = [
        o
        for o in option_trades.mleg_orders(spec.trade_id)
        if o.client_order_id.startswith(f"{spec.trade_id}-close-")
    ]
    assert [Decimal(str(o.qty)) for o in closes] == [Decimal(2)]
