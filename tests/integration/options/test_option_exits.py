"""OptionTradeWorkflow's exit rules on the real stack: a stop when the underlying jumps through
the short call, and the days-to-expiry close reached by skipping Temporal time while the paper
broker's manual clock moves to the same market day."""

from __future__ import annotations

import asyncio
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
from alpaca.trading.enums import OrderStatus as SdkOrderStatus
from temporalio.client import WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

from broker.alpaca import AlpacaGateway
from broker.option_marks import MARKS_MAX_AGE
from paperbroker.admin_client import AdminClient
from tests.conftest import SESSION_START
from tests.integration.options.conftest import (
    MONTHLY,
    SHORT_CALL,
    UNDERLYING,
    WEEKLY,
    OptionHarness,
    marketable_spec,
    option_harness,
)
from trading.options.chain import parse_occ_symbol
from trading.options.exits import CondorExitRule, CondorExitRules, stop_loss_mark
from trading.options.trade_models import OptionTradeResult, OptionTradeStatus
from worker import create_worker
from workflows.option_trade import OptionTradeWorkflow

# SPY is 520 at the session; 550 is through the 530 short call and well past the 535 wing.
THROUGH_THE_SHORT_CALL = Decimal(550)
# Stop once the loss is half the credit: at 550 the 5-wide call spread is worth well over 4.00
# (the broker's ~30% surface keeps time value in its ITM calls), past a stop near 3.50.
STOP = CondorExitRules(close_at_dte=0, stop_multiple=Decimal("0.5"))


def _cash(harness: OptionHarness) -> Decimal:
    account: Any = harness.trading.get_account()
    return Decimal(str(account.cash))


def _fill_price(order: object) -> Decimal:
    price = getattr(order, "filled_avg_price", None)
    assert price is not None, f"order {order} has no fill price"
    return Decimal(str(price))


async def test_stop_loss_closes_when_the_underlying_jumps_through_the_short_call(
    option_trades: OptionHarness,
) -> None:
    assert parse_occ_symbol(SHORT_CALL).strike < THROUGH_THE_SHORT_CALL
    spec = marketable_spec(option_trades, WEEKLY, rules=STOP)
    cash_before = _cash(option_trades)
    handle = await option_trades.start(spec)
    view = await option_trades.wait_for(handle, lambda v: v.status is OptionTradeStatus.OPEN)
    credit = view.state.credit
    assert credit is not None and credit > 0

    option_trades.admin.set_price(UNDERLYING, THROUGH_THE_SHORT_CALL)
    # The worker's option marks are up to MARKS_MAX_AGE old: the stop follows within that.
    await option_trades.wait_for(handle, lambda v: v.status.is_terminal, within=20)
    result: OptionTradeResult = await handle.result()

    assert result.status is OptionTradeStatus.CLOSED
    assert result.exit_reason == CondorExitRule.STOP_LOSS
    assert result.exit_debit is not None and result.exit_debit >= stop_loss_mark(credit, STOP)
    assert result.realized_pnl is not None and result.realized_pnl < 0
    assert result.realized_pnl == (credit - result.exit_debit) * 100
    assert option_trades.option_positions() == {}
    orders = option_trades.mleg_orders(spec.trade_id)
    opens = [o for o in orders if o.client_order_id.startswith(f"{spec.trade_id}-open-")]
    closes = [o for o in orders if o.client_order_id.startswith(f"{spec.trade_id}-close-")]
    assert [o.status for o in closes] == [SdkOrderStatus.FILLED]
    # The workflow's numbers are the broker's fills (net per unit: a credit is negative) ...
    assert [o.status for o in opens] == [SdkOrderStatus.FILLED]
    assert -_fill_price(opens[0]) == credit
    assert _fill_price(closes[0]) == result.exit_debit
    # ... and the account's cash moved by exactly the realized loss.
    cash_after = _cash(option_trades)
    assert cash_after - cash_before == result.realized_pnl


# The April condor is 45 days out at the session (Tuesday 5 March); closing at 44 days puts the
# threshold on Wednesday 6 March, the next session day.
DTE_RULES = CondorExitRules(
    close_at_dte=44,
    take_profit_fraction=Decimal(1),  # only a worthless condor: never at these quotes
    stop_multiple=Decimal(10),  # past the max loss: never
)
THRESHOLD_DAY = date(2024, 3, 6)
NEW_YORK = ZoneInfo("America/New_York")
NEXT_SESSION = SESSION_START + timedelta(days=1)  # Wed 10:30 New York: the market is open


async def test_days_to_expiry_rule_closes_the_condor_on_the_threshold_day(
    time_skipping_env: WorkflowEnvironment,
    pool: asyncpg.Pool,
    gateway: AlpacaGateway,
    broker_admin: AdminClient,
    activity_executor: ThreadPoolExecutor,
) -> None:
    env, client = time_skipping_env, time_skipping_env.client
    task_queue = f"tq-{uuid.uuid4()}"
    # SPY stands still overnight (volatility 0) with a fixed surface, so only the date moves.
    broker_admin.set_price(UNDERLYING, volatility=0)
    broker_admin.set_option_iv(UNDERLYING, iv=0.18)
    harness = option_harness(client, task_queue, broker_admin, gateway, pool)
    spec = marketable_spec(harness, MONTHLY, rules=DTE_RULES, check_interval=timedelta(days=1))
    assert (spec.plan.expiry - SESSION_START.date()).days > DTE_RULES.close_at_dte
    async with create_worker(client, pool, task_queue, activity_executor, gateway.endpoint):
        with env.with_time_skipping_disabled():  # real time until we fast-forward
            handle = await harness.start(spec)
        try:
            view = await harness.wait_for(handle, lambda v: v.state.decision is not None)
            decision = view.state.decision
            assert decision is not None and decision.action == "hold"
            assert decision.next_rule == f"{CondorExitRule.DTE_THRESHOLD} on {THRESHOLD_DAY}"

            # The next day's check must read the next day's quotes, not the worker's cached
            # ones (option marks are kept MARKS_MAX_AGE of real time): let them age out.
            broker_admin.set_clock(NEXT_SESSION)
            await asyncio.sleep(MARKS_MAX_AGE.total_seconds() + 0.5)
            await env.fast_forward(handle, spec.check_interval)
            result: OptionTradeResult = await asyncio.wait_for(handle.result(), timeout=20)
            closed = await handle.query(OptionTradeWorkflow.status)
        finally:
            if (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
                await handle.terminate("test finished")

    assert result.status is OptionTradeStatus.CLOSED
    assert result.exit_reason == CondorExitRule.DTE_THRESHOLD
    assert harness.option_positions() == {}
    closes = [
        o
        for o in harness.mleg_orders(spec.trade_id)
        if o.client_order_id.startswith(f"{spec.trade_id}-close-")
    ]
    assert [o.status for o in closes] == [SdkOrderStatus.FILLED]
    # Closed at the broker on the threshold day, a day after it opened.
    assert closes[0].filled_at is not None
    assert closes[0].filled_at.astimezone(NEW_YORK).date() == THRESHOLD_DAY
    assert closed.state.decision is not None
    assert f"dte={DTE_RULES.close_at_dte} " in closed.state.decision.detail
