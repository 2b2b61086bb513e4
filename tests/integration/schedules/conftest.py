"""Schedules harness: a unique schedule id prefix per test, its schedules deleted afterwards."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator

import pytest_asyncio
from temporalio.client import Client
from temporalio.service import RPCError

from contracts.schedules import OPERATION_NAMES, schedule_id_for


@pytest_asyncio.fixture
async def prefix(client: Client) -> AsyncIterator[str]:
    """A schedule id prefix no other test uses; every schedule under it is deleted after."""
    unique = f"t{uuid.uuid4().hex[:8]}-"
    yield unique
    ids = {schedule_id_for(name, unique) for name in OPERATION_NAMES}
    ids |= {
        entry.id async for entry in await client.list_schedules() if entry.id.startswith(unique)
    }
    for schedule_id in ids:
        with contextlib.suppress(RPCError):
            await client.get_schedule_handle(schedule_id).delete()
