"""A worker's /healthz (the process is up) and /readyz (its dependencies answer)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from temporalio.client import Client

from settings import Settings


@asynccontextmanager
async def health_server(
    settings: Settings, client: Client, pool: asyncpg.Pool
) -> AsyncIterator[None]:
    """Serve /healthz and /readyz on HEALTH_ADDRESS while the worker runs."""
    yield
