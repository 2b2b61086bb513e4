"""OptionTradeWorkflow on the real stack: a condor opened with one mleg order, closed by rule
(take profit once implied volatility falls) or on FORCE_EXIT with one closing mleg order."""

from __future__ import annotations

import os
from datetime import timedelta
from decimal import Decimal
from typing import Any

from alpaca.trading.enums import OrderStatus as SdkOrderStatus
from temporalio.client import WorkflowHandle

from ledger.option_trades import OptionTrades
from tests.integration.options.conftest import (
    LONG_CALL,
    LONG_PUT,
    SHORT_CALL,
    SHORT_PUT,
    UNDERLYING,
    OptionHarness,
)
from tests.integration.trade.conftest import HISTORIES
from trading.options.exits import CondorExitRules
from trading.options.trade_models import (
    ENTRY_FAILED,
    FORCED_EXIT,
    OptionForceExit,
    OptionTradeResult,
    OptionTradeStatus,
)
from workflows.option_trade import OptionTradeWorkflow

# SAVE_OPTION_HISTORIES=1 re-records tests/histories/option_trade_*.json from these runs (only
# for a deliberate workflow change; say so in the commit). test_option_trade_replay.py replays
# them against today's code.
SAVE_OPTION_HISTORIES = os.environ.get("SAVE_OPTION_HISTORIES") == "1"

OPENED = {
    LONG_PUT: Decimal(1),
    SHORT_PUT: Decimal(-1),
    SHORT_CALL: Decimal(-1),
    LONG_CALL: Decimal(1),
}


async def _save(handle: WorkflowHandle[Any, Any], name: str) -> None:
    if SAVE_OPTION_HISTORIES:
        history = await handle.fetch_history()
        (HISTORIES / f"option_trade_{name}.json").write_text(history.to_json())


async def test_condor_opens_with_one_mleg_and_takes_profit_when_iv_falls(
    option_trades: OptionHarness,
) -> None:
    spec = option_trades.spec()
    handle = await option_trades.start(spec)
    view = await option_trades.wait_for(handle, lambda v: v.status is OptionTradeStatus.OPEN)
    assert option_trades.option_positions() == OPENED
    filled = [
        o for o in option_trades.mleg_orders(spec.trade_id) if o.status is SdkOrderStatus.FILLED
    ]
    assert len(filled) == 1 and filled[0].client_order_id.startswith(f"{spec.trade_id}-open-")
    credit = view.state.credit
    assert credit is not None and credit > 0
    # The walk started at the mid and gave up at most max_walk.
    assert spec.limit_credit - spec.max_walk <= credit

    option_trades.admin.set_option_iv(UNDERLYING, shift=-0.12)
    result: OptionTradeResult = await handle.result()

    assert result.status is OptionTradeStatus.CLOSED
    assert result.exit_reason == "take_profit"
    assert result.exit_debit is not None and result.exit_debit < credit
    assert result.realized_pnl == (credit - result.exit_debit) * 100
    assert option_trades.option_positions() == {}
    closes = [
        o
        for o in option_trades.mleg_orders(spec.trade_id)
        if o.client_order_id.startswith(f"{spec.trade_id}-close-")
    ]
    assert [o.status for o in closes] == [SdkOrderStatus.FILLED]
    # The ledger row followed the workflow: closed with the same numbers, each status audited.
    row = await OptionTrades(option_trades.pool).get(spec.trade_id)
    assert row is not None and row.status is OptionTradeStatus.CLOSED
    assert (row.credit, row.exit_debit, row.realized_pnl) == (
        credit,
        result.exit_debit,
        result.realized_pnl,
    )
    assert row.exit_reason == "take_profit" and row.max_loss == (spec.plan.width - credit) * 100
    actions = await option_trades.pool.fetch(
        "SELECT action FROM audit_log WHERE trade_id = $1 ORDER BY id", spec.trade_id
    )
    assert [a["action"] for a in actions] == [
        "option_trade_pending_entry",
        "option_trade_open",
        "option_trade_closing",
        "option_trade_closed",
    ]
    await _save(handle, "take_profit_after_an_iv_fall")


async def test_force_exit_closes_the_condor_with_one_mleg(option_trades: OptionHarness) -> None:
    spec = option_trades.spec(check_interval=timedelta(minutes=10))
    handle = await option_trades.start(spec)
    await option_trades.wait_for(handle, lambda v: v.status is OptionTradeStatus.OPEN)
    view = await option_trades.wait_for(handle, lambda v: v.state.decision is not None)
    assert view.state.decision is not None and view.state.decision.action == "hold"

    await handle.signal(OptionTradeWorkflow.force_exit, OptionForceExit(reason="test"))
    result: OptionTradeResult = await handle.result()

    assert result.status is OptionTradeStatus.CLOSED
    assert result.exit_reason == FORCED_EXIT
    await _save(handle, "force_exit")
    assert option_trades.option_positions() == {}
    statuses = sorted(str(o.status.value) for o in option_trades.mleg_orders(spec.trade_id))
    assert statuses.count("filled") == 2  # one open, one close
    # Option calls are paid for from the account's budget; closing is risk-reducing.
    spent = await option_trades.budget_spent()
    assert {("submit_mleg_order", "trade"), ("submit_mleg_order", "protect")} <= spent
    assert ("option_marks", "read") in spent


async def test_entry_gives_up_after_the_walk_limit_with_nothing_open(
    option_trades: OptionHarness,
) -> None:
    base = option_trades.spec()
    # Ask far above the natural credit and allow two 1-cent steps: never marketable.
    spec = option_trades.spec(
        limit_credit=base.plan.width - Decimal("0.50"),
        walk_step=Decimal("0.01"),
        max_walk=Decimal("0.02"),
    )
    handle = await option_trades.start(spec)
    result: OptionTradeResult = await handle.result()

    assert result.status is OptionTradeStatus.ENTRY_FAILED
    assert result.exit_reason == ENTRY_FAILED
    orders = option_trades.mleg_orders(spec.trade_id)
    assert sorted(o.client_order_id for o in orders) == [
        f"{spec.trade_id}-open-{n}" for n in range(3)
    ]
    assert all(o.status is SdkOrderStatus.CANCELED for o in orders)
    assert option_trades.option_positions() == {}


async def test_stop_loss_closes_when_implied_volatility_jumps(
    option_trades: OptionHarness,
) -> None:
    spec = option_trades.spec(rules=CondorExitRules(close_at_dte=0, stop_multiple=Decimal(1)))
    handle = await option_trades.start(spec)
    view = await option_trades.wait_for(handle, lambda v: v.status is OptionTradeStatus.OPEN)
    credit = view.state.credit
    assert credit is not None

    option_trades.admin.set_option_iv(UNDERLYING, shift=0.6)
    result: OptionTradeResult = await handle.result()

    assert result.status is OptionTradeStatus.CLOSED
    assert result.exit_reason == "stop_loss"
    assert result.exit_debit is not None and result.exit_debit >= 2 * credit
    assert result.realized_pnl is not None and result.realized_pnl < 0
    assert option_trades.option_positions() == {}
