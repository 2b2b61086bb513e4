"""The migration runner: idempotent, safe under concurrency, strict about edited files."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest

from ledger.migrate import MigrationError, applied_versions, apply_migrations, discover

pytestmark = pytest.mark.integration

CORE_TABLES = {
    "signals",
    "trades",
    "orders",
    "audit_log",
    "risk_events",
    "reconcile_runs",
    "entry_runs",
    "schema_migrations",
}


async def _tables(conn: asyncpg.Connection) -> set[str]:
    rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    return {row["tablename"] for row in rows}


async def test_applying_twice_is_a_no_op(empty_database_url: str) -> None:
    conn = await asyncpg.connect(empty_database_url)
    try:
        first = await apply_migrations(conn)
        second = await apply_migrations(conn)
        assert first == [m.name for m in discover()]
        assert second == []
        assert await _tables(conn) >= CORE_TABLES
        assert await applied_versions(conn) == [m.version for m in discover()]
    finally:
        await conn.close()


async def test_concurrent_runners_produce_one_schema(
    embedded_postgres: object, empty_database_url: str
) -> None:
    base = empty_database_url.rsplit("/", 1)[0]
    fresh = f"{base}/concurrent_{abs(hash(empty_database_url)) % 10**8}"
    admin = await asyncpg.connect(empty_database_url)
    await admin.execute(f'CREATE DATABASE "{fresh.rsplit("/", 1)[1]}"')
    await admin.close()
    conns = [await asyncpg.connect(fresh) for _ in range(2)]
    try:
        results = await asyncio.gather(*(apply_migrations(c) for c in conns))
        names = [m.name for m in discover()]
        # Each file applied exactly once, by one of the two runners.
        assert sorted(results[0] + results[1]) == sorted(names)
        assert await _tables(conns[0]) >= CORE_TABLES
        count = await conns[0].fetchval("SELECT count(*) FROM schema_migrations")
        assert count == len(names)
    finally:
        for conn in conns:
            await conn.close()


async def test_an_edited_applied_migration_is_refused(
    empty_database_url: str, tmp_path: Path
) -> None:
    (tmp_path / "0001_one.sql").write_text("CREATE TABLE edited_probe (id int);")
    conn = await asyncpg.connect(empty_database_url)
    try:
        await conn.execute("DROP TABLE IF EXISTS schema_migrations CASCADE")
        await apply_migrations(conn, tmp_path)
        (tmp_path / "0001_one.sql").write_text("CREATE TABLE edited_probe (id bigint);")
        with pytest.raises(MigrationError, match="changed after it was applied"):
            await apply_migrations(conn, tmp_path)
    finally:
        await conn.close()


async def test_a_failing_migration_leaves_nothing_half_done(
    empty_database_url: str, tmp_path: Path
) -> None:
    (tmp_path / "0001_half.sql").write_text(
        "CREATE TABLE half_done (id int); SELECT * FROM no_such_table;"
    )
    conn = await asyncpg.connect(empty_database_url)
    try:
        await conn.execute("DROP TABLE IF EXISTS schema_migrations CASCADE")
        with pytest.raises(MigrationError, match=r"0001_half\.sql failed"):
            await apply_migrations(conn, tmp_path)
        assert "half_done" not in await _tables(conn)
    finally:
        await conn.close()


def test_badly_named_files_are_refused(tmp_path: Path) -> None:
    (tmp_path / "one.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match=r"NNNN_description\.sql"):
        discover(tmp_path)
