"""Helpers shared by the integration harnesses: polling until a condition holds, stopping
workflows a test leaves running."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

import asyncpg
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.service import RPCError

from broker.budget import BrokerBudget
from broker.endpoint import BrokerEndpoint
from broker.metered import MeteredGateway, ObservedGateway
from contracts.control import WORKFLOW_ID as CONTROL_WORKFLOW_ID
from trading.broker_budget import BudgetConfig

T = TypeVar("T")


async def poll_until(
    read: Callable[[], Awaitable[T]],
    check: Callable[[T], bool],
    within: float,
    *,
    every: float = 0.2,
    shown: Callable[[T], str] = repr,
) -> T:
    """Read until `check` holds and return that value; fail after `within` seconds showing
    the last value read (through `shown`)."""
    deadline = time.monotonic() + within
    while True:
        value = await read()
        if check(value):
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"condition not met in {within}s; last read: {shown(value)}")
        await asyncio.sleep(every)


async def terminate_running(handles: Iterable[WorkflowHandle[Any, Any]], reason: str) -> None:
    """Terminate each workflow that is still running; unknown ones are skipped."""
    for handle in handles:
        with contextlib.suppress(RPCError):
            if (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
                await handle.terminate(reason)


async def terminate_control(client: Client, reason: str) -> None:
    """Terminate the trading-control singleton, a single id across the whole test session."""
    await terminate_running([client.get_workflow_handle(CONTROL_WORKFLOW_ID)], reason)


def metered(
    gateway: ObservedGateway, pool: asyncpg.Pool, endpoint: BrokerEndpoint
) -> MeteredGateway:
    """The gateway as activities see it: paid for from the endpoint key's shared budget."""
    return MeteredGateway(gateway, BrokerBudget.for_endpoint(pool, endpoint, BudgetConfig()))
