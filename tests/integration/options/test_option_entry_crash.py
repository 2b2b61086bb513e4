"""A worker stopped while the opening mleg order is in flight: the order reaches the broker after
the worker is gone, a new worker on the same queue carries the trade on, and the broker ends up
with exactly one opening order and one condor."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import asyncpg
import pytest
from alpaca.trading.enums import OrderStatus as SdkOrderStatus
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle

from broker.alpaca import READ_TIMEOUT_S, AlpacaGateway
from paperbroker.admin_client import AdminClient
from tests.integration.options.conftest import (
    LONG_CALL,
    LONG_PUT,
    SHORT_CALL,
    SHORT_PUT,
    WEEKLY,
    marketable_spec,
    option_harness,
)
from trading.broker_models import ProbeOutcome
from trading.options.trade_models import OptionTradeStatus
from worker import create_worker

OPENED = {
    LONG_PUT: Decimal(1),
    SHORT_PUT: Decimal(-1),
    SHORT_CALL: Decimal(-1),
    LONG_CALL: Decimal(1),
}


@dataclass(frozen=True)
class HeldSubmit:
    """How long the broker holds the opening POST before applying it (then answers 504).

    Always longer than the worker's graceful shutdown (3 s, worker.py): the first worker's
    submit is cancelled with its POST still held, and Temporal retries it on the next worker.
    """

    held_ms: int
    applied_before_the_retry: bool


# Applied while no worker runs (the test waits for it before starting the second worker): the
# retry must find the order (duplicate client_order_id, then a lookup), not send a second one.
LANDS_WHILE_DOWN = HeldSubmit(held_ms=5000, applied_before_the_retry=True)
# Applied after the retry placed the order: the late POST must be refused as a duplicate, not
# become a second condor. Held just under the gateway's read timeout, so the abandoned request
# is still connected when the broker applies it (a request whose client gave up is dropped).
LANDS_AFTER_THE_RETRY = HeldSubmit(
    held_ms=int(READ_TIMEOUT_S * 1000) - 500, applied_before_the_retry=False
)


async def _until(check: Callable[[], bool], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def _submit_attempts(handle: WorkflowHandle[Any, Any]) -> list[int]:
    """The attempt number of each started submit_mleg_order (retries are one event, the last)."""
    scheduled: set[int] = set()
    attempts: list[int] = []
    async for event in handle.fetch_history_events():
        if event.activity_task_scheduled_event_attributes.activity_type.name == "submit_mleg_order":
            scheduled.add(event.event_id)
        started = event.activity_task_started_event_attributes
        if started.scheduled_event_id in scheduled:
            attempts.append(started.attempt)
    return attempts


async def _workflow_task_after_the_submit(handle: WorkflowHandle[Any, Any]) -> bool:
    """A workflow task completed after the submit did: a live worker holds the workflow now."""
    submit: int | None = None
    submitted = False
    async for event in handle.fetch_history_events():
        if event.activity_task_scheduled_event_attributes.activity_type.name == "submit_mleg_order":
            submit = event.event_id
        if event.activity_task_completed_event_attributes.scheduled_event_id == submit:
            submitted = True
        if submitted and event.HasField("workflow_task_completed_event_attributes"):
            return True
    return False


@pytest.mark.parametrize(
    "held",
    [LANDS_WHILE_DOWN, LANDS_AFTER_THE_RETRY],
    ids=["order-lands-while-no-worker-runs", "order-lands-after-the-retry"],
)
async def test_worker_stopped_mid_entry_leaves_exactly_one_opening_order(
    held: HeldSubmit,
    client: Client,
    pool: asyncpg.Pool,
    task_queue: str,
    activity_executor: ThreadPoolExecutor,
    broker_admin: AdminClient,
    gateway: AlpacaGateway,
) -> None:
    harness = option_harness(client, task_queue, broker_admin, gateway, pool)
    # At the natural credit: marketable, so one price (open-0) is all the entry ever sends.
    spec = marketable_spec(harness, WEEKLY)
    cid = f"{spec.trade_id}-open-0"

    def placed() -> bool:
        return harness.options.probe_by_client_id(cid).outcome is ProbeOutcome.EXISTS

    broker_admin.add_fault(
        method="POST", path="/v2/orders", latency_ms=held.held_ms, after=True, status=504, times=1
    )
    async with create_worker(client, pool, task_queue, activity_executor, gateway.endpoint):
        handle = await harness.start(spec)
        # The rule is used up the moment the broker receives the POST: the submit is in flight.
        await _until(lambda: broker_admin.faults() == [])
        applied_at = time.monotonic() + held.held_ms / 1000
    # The first worker is gone (its submit cancelled after the graceful shutdown); the POST it
    # sent is still held at the broker.
    if held.applied_before_the_retry:
        await _until(placed)
    try:
        async with create_worker(client, pool, task_queue, activity_executor, gateway.endpoint):
            if not held.applied_before_the_retry:
                await _until(placed)
                assert time.monotonic() < applied_at, "the retry came after the held POST"
            # Queried before the new worker has taken the workflow over, the server may still
            # route the query to the stopped worker's sticky queue; wait for a task it completed.
            deadline = time.monotonic() + 15
            while not await _workflow_task_after_the_submit(handle):
                assert time.monotonic() < deadline, "the new worker never took the trade over"
                await asyncio.sleep(0.1)
            view = await harness.wait_for(handle, lambda v: v.status is OptionTradeStatus.OPEN)
            # Past the moment the held POST was applied (or refused as a duplicate).
            await asyncio.sleep(max(0.0, applied_at + 0.5 - time.monotonic()))
            settled = await harness.wait_for(handle, lambda v: v.status is OptionTradeStatus.OPEN)
    finally:
        if (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
            await handle.terminate("test finished")

    # The submit was cut off by the stop and retried by the new worker: two POSTs, one order.
    assert await _submit_attempts(handle) == [2]
    assert broker_admin.requests()["by_route"].get("POST /v2/orders") == 2
    opening = [
        o
        for o in harness.mleg_orders(spec.trade_id)
        if o.client_order_id.startswith(f"{spec.trade_id}-open-")
    ]
    assert [(o.client_order_id, o.status) for o in opening] == [(cid, SdkOrderStatus.FILLED)]
    assert view.state.entry_order_id == str(opening[0].id)
    assert settled.state.entry_attempt == 0 and settled.state.credit is not None
    assert harness.option_positions() == OPENED
