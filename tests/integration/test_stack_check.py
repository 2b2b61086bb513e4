"""A workflow runs end to end on the real dev server and writes the ledger through asyncpg."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import asyncpg
import pytest
from temporalio.client import Client

from broker.alpaca import AlpacaGateway
from tests.conftest import SESSION_START
from trading.models import StackCheckInput
from worker import create_worker
from workflows.stack_check import StackCheckWorkflow

pytestmark = pytest.mark.integration


async def test_stack_check_writes_and_reads_back_an_audit_row_and_asks_the_broker(
    client: Client,
    pool: asyncpg.Pool,
    task_queue: str,
    activity_executor: ThreadPoolExecutor,
    gateway: AlpacaGateway,
) -> None:
    workflow_id = f"stack-check-{uuid.uuid4().hex[:8]}"
    async with create_worker(client, pool, task_queue, activity_executor, gateway.endpoint):
        result = await client.execute_workflow(
            StackCheckWorkflow.run,
            StackCheckInput(requested_by="test"),
            id=workflow_id,
            task_queue=task_queue,
        )
    assert result.round_trip_ok
    assert result.broker_checked and result.market_open is True  # the session at SESSION_START
    assert result.broker_time is not None and result.broker_time.date() == SESSION_START.date()
    assert result.workflow_id == workflow_id
    # Read the row independently of the workflow, straight from PostgreSQL.
    row = await pool.fetchrow(
        "SELECT actor, action, reason FROM audit_log WHERE id = $1", result.audit_id
    )
    assert row is not None
    assert (row["actor"], row["action"], row["reason"]) == (
        workflow_id,
        "stack_check",
        "requested by test",
    )


async def test_audit_log_refuses_updates_and_deletes(pool: asyncpg.Pool) -> None:
    audit_id = await pool.fetchval(
        "INSERT INTO audit_log (actor, action) VALUES ('test', 'probe') RETURNING id"
    )
    with pytest.raises(asyncpg.RaiseError, match="append-only"):
        await pool.execute("UPDATE audit_log SET reason = 'x' WHERE id = $1", audit_id)
    with pytest.raises(asyncpg.RaiseError, match="append-only"):
        await pool.execute("DELETE FROM audit_log WHERE id = $1", audit_id)
    assert await pool.fetchval("SELECT reason FROM audit_log WHERE id = $1", audit_id) == ""
