"""Ledger test fixtures: a fresh migrated database per test where claims must not mix."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest_asyncio

from devstack.postgres import EmbeddedPostgres
from ledger.migrate import apply_migrations


@pytest_asyncio.fixture
async def fresh_database_url(embedded_postgres: EmbeddedPostgres) -> str:
    """A new database with the ledger migrations applied, for one test."""
    await embedded_postgres.wait_ready()
    url = await embedded_postgres.create_database(f"t_ledger_{uuid.uuid4().hex[:12]}")
    conn = await asyncpg.connect(url)
    try:
        await apply_migrations(conn)
    finally:
        await conn.close()
    return url


@pytest_asyncio.fixture
async def fresh_pool(fresh_database_url: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool on a database of this test's own."""
    created = await asyncpg.create_pool(fresh_database_url, min_size=1, max_size=4)
    assert created is not None
    try:
        yield created
    finally:
        await created.close()
