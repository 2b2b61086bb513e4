"""Drain test fixtures: a database of each test's own, so drains of different tests never mix."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest_asyncio

from devstack.postgres import EmbeddedPostgres
from ledger.migrate import apply_migrations


@pytest_asyncio.fixture
async def drain_database_url(embedded_postgres: EmbeddedPostgres) -> str:
    """A new migrated database for one test."""
    await embedded_postgres.wait_ready()
    url = await embedded_postgres.create_database(f"t_drain_{uuid.uuid4().hex[:12]}")
    conn = await asyncpg.connect(url)
    try:
        await apply_migrations(conn)
    finally:
        await conn.close()
    return url


@pytest_asyncio.fixture
async def drain_pool(drain_database_url: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool on this test's database."""
    created = await asyncpg.create_pool(drain_database_url, min_size=1, max_size=8)
    assert created is not None
    try:
        yield created
    finally:
        await created.close()
