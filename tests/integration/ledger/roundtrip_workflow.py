"""A test-only workflow that drives one trade and one signal through the ledger activities.

It lives apart from the test module so the workflow sandbox imports only this file, whose
non-Temporal imports are all passed through.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.ledger import LedgerActivities
    from trading.broker_models import OrderSide, OrderStatus, OrderType
    from trading.ledger_records import (
        CloseReason,
        OpenTradesQuery,
        OrderRole,
        OrderUpsert,
        SignalCreate,
        SignalFunnelQuery,
        TradeClose,
        TradeCreate,
        TradeRecord,
        TradeStatus,
        TradeTransition,
    )
    from trading.models import Frozen

_CALL: dict[str, Any] = {
    "start_to_close_timeout": timedelta(seconds=10),
    "retry_policy": RetryPolicy(maximum_attempts=3),
}


class RoundTripInput(Frozen):
    """Which trade and signal the test workflow writes."""

    trade_id: str
    signal_key: str


class RoundTripResult(Frozen):
    """What the test workflow saw through the ledger activities."""

    first_close: TradeRecord
    second_close: TradeRecord
    second_close_applied: bool
    open_trade_ids: list[str]
    pending_in_funnel: int


@workflow.defn(sandboxed=True)
class LedgerRoundTripWorkflow:
    """Drives one trade and one signal through the ledger activities, as a trade workflow would."""

    @workflow.run
    async def run(self, request: RoundTripInput) -> RoundTripResult:
        trade_id = request.trade_id
        await workflow.execute_activity_method(
            LedgerActivities.create_trade,
            TradeCreate(
                trade_id=trade_id,
                symbol="AAPL",
                workflow_id=workflow.info().workflow_id,
                as_of=workflow.now(),
            ),
            **_CALL,
        )
        await workflow.execute_activity_method(
            LedgerActivities.transition_trade,
            TradeTransition(trade_id=trade_id, status=TradeStatus.OPEN, as_of=workflow.now()),
            **_CALL,
        )
        await workflow.execute_activity_method(
            LedgerActivities.upsert_order,
            OrderUpsert(
                client_order_id=f"{trade_id}-entry-1",
                trade_id=trade_id,
                role=OrderRole.ENTRY,
                symbol="AAPL",
                side=OrderSide.BUY,
                order_type=OrderType.MARKET,
                qty=Decimal(5),
                status=OrderStatus.FILLED,
                filled_qty=Decimal(5),
                filled_avg_price=Decimal("100.01"),
                broker_updated_at=workflow.now(),
            ),
            **_CALL,
        )
        close = TradeClose(
            trade_id=trade_id,
            close_reason=CloseReason.FORCE_EXIT,
            exit_price=Decimal("102.50"),
            realized_pnl=Decimal("12.45"),
            closed_at=workflow.now(),
        )
        first = await workflow.execute_activity_method(LedgerActivities.close_trade, close, **_CALL)
        second = await workflow.execute_activity_method(
            LedgerActivities.close_trade,
            close.model_copy(update={"close_reason": CloseReason.GHOST}),
            **_CALL,
        )
        still_open = await workflow.execute_activity_method(
            LedgerActivities.list_open_trades, OpenTradesQuery(symbol="AAPL"), **_CALL
        )
        await workflow.execute_activity_method(
            LedgerActivities.insert_signal,
            SignalCreate(signal_key=request.signal_key, symbol="AAPL", strategy="breakout"),
            **_CALL,
        )
        funnel = await workflow.execute_activity_method(
            LedgerActivities.signal_funnel, SignalFunnelQuery(window_hours=1), **_CALL
        )
        return RoundTripResult(
            first_close=first.trade,
            second_close=second.trade,
            second_close_applied=second.applied,
            open_trade_ids=[t.id for t in still_open.trades],
            pending_in_funnel=funnel.all_time.pending,
        )
