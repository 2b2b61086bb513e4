"""LedgerActivities through a real Temporal worker and the pydantic converter, on PostgreSQL."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from decimal import Decimal

import asyncpg
import pytest
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment
from temporalio.worker import Worker

from activities.ledger import LedgerActivities
from ledger.orders import Orders
from ledger.signals import Signals
from ledger.trades import Trades
from tests.integration.ledger.roundtrip_workflow import LedgerRoundTripWorkflow, RoundTripInput
from trading.ledger_records import CloseReason, SignalStatus, TradeClose

pytestmark = pytest.mark.integration


async def test_ledger_activities_run_through_a_real_worker(
    client: Client, pool: asyncpg.Pool, task_queue: str, activity_executor: ThreadPoolExecutor
) -> None:
    trade_id = f"t{uuid.uuid4().hex[:12]}"
    signal_key = f"sig-{trade_id}"
    ledger_activities = LedgerActivities(pool)
    worker = Worker(
        client,
        task_queue=task_queue,
        workflows=[LedgerRoundTripWorkflow],
        activities=[
            ledger_activities.create_trade,
            ledger_activities.transition_trade,
            ledger_activities.upsert_order,
            ledger_activities.close_trade,
            ledger_activities.list_open_trades,
            ledger_activities.insert_signal,
            ledger_activities.signal_funnel,
        ],
        activity_executor=activity_executor,
    )
    async with worker:
        result = await client.execute_workflow(
            LedgerRoundTripWorkflow.run,
            RoundTripInput(trade_id=trade_id, signal_key=signal_key),
            id=f"trade-{trade_id}",
            task_queue=task_queue,
        )

    closed = result.first_close
    assert closed.status == "CLOSED" and closed.close_reason is CloseReason.FORCE_EXIT
    # Decimal money survives the data converter exactly.
    assert (closed.exit_price, closed.realized_pnl) == (Decimal("102.50"), Decimal("12.45"))
    assert not result.second_close_applied and result.second_close == closed
    assert closed.workflow_id == f"trade-{trade_id}"
    assert trade_id not in result.open_trade_ids
    assert result.pending_in_funnel == 1
    # What the activities wrote, read back through the repositories.
    assert await Trades(pool).get(trade_id) == closed
    orders = await Orders(pool).of_trade(trade_id)
    assert [o.client_order_id for o in orders] == [f"{trade_id}-entry-1"]
    signal = await Signals(pool).get(signal_key)
    assert signal is not None and signal.status is SignalStatus.PENDING
    # Straight from PostgreSQL: one trade row, and the close audited once.
    assert await pool.fetchval("SELECT count(*) FROM trades WHERE id = $1", trade_id) == 1
    closes = await pool.fetchval(
        "SELECT count(*) FROM audit_log WHERE trade_id = $1 AND action = 'trade_closed'", trade_id
    )
    assert closes == 1


async def test_a_write_to_an_unknown_trade_fails_without_retrying(pool: asyncpg.Pool) -> None:
    activities = LedgerActivities(pool)
    env = ActivityEnvironment()
    with pytest.raises(ApplicationError) as failure:
        await env.run(
            activities.close_trade,
            TradeClose(trade_id="missing", close_reason=CloseReason.GHOST, closed_at=_now()),
        )
    assert failure.value.type == "LedgerRecordMissing" and failure.value.non_retryable


def _now() -> datetime:
    return datetime.now(UTC)
