"""Helpers shared by the integration harnesses: stopping workflows a test leaves running."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from typing import Any

import asyncpg
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.service import RPCError

from broker.budget import BrokerBudget
from broker.endpoint import BrokerEndpoint
from broker.metered import MeteredGateway, ObservedGateway
from contracts.control import WORKFLOW_ID as CONTROL_WORKFLOW_ID
from trading.broker_budget import BudgetConfig


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
