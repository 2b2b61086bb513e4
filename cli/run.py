"""Running a workflow from the CLI: a Temporal client from the settings, the result awaited."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from temporalio.client import Client
from temporalio.types import MethodAsyncSingleParam

from clients import make_client
from settings import Settings

RequestT = TypeVar("RequestT")
ResultT = TypeVar("ResultT")
T = TypeVar("T")


def with_client(settings: Settings, action: Callable[[Client], Awaitable[T]]) -> T:
    """Run `action` to completion with a Temporal client made from the settings."""

    async def go() -> T:
        return await action(await make_client(settings))

    return asyncio.run(go())


def run_workflow(
    settings: Settings,
    workflow_run: MethodAsyncSingleParam[Any, RequestT, ResultT],
    request: RequestT,
    id_prefix: str,
) -> ResultT:
    """Run a workflow once under a fresh `<id_prefix>-<12 hex>` id and return its result."""

    async def execute(client: Client) -> ResultT:
        result: ResultT = await client.execute_workflow(
            workflow_run,
            request,
            id=f"{id_prefix}-{uuid.uuid4().hex[:12]}",
            task_queue=settings.temporal_task_queue,
        )
        return result

    return with_client(settings, execute)
