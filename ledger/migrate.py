"""Apply ledger/migrations/*.sql in order: once each, one transaction each, under a lock."""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from asyncpg.pool import PoolConnectionProxy

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# Any constant shared by every runner; pg_advisory_xact_lock serialises concurrent runners.
ADVISORY_LOCK_KEY = 0x6474_6C65_6467_6572  # "dtledger"
_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")

logger = logging.getLogger(__name__)


class MigrationError(Exception):
    """A migration file is malformed, changed after it was applied, or failed."""


@dataclass(frozen=True)
class Migration:
    """One numbered .sql file."""

    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def discover(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """The migration files in version order; names must be NNNN_words.sql and unique."""
    found: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        match = _NAME.match(path.name)
        if match is None:
            raise MigrationError(f"{path.name}: migration files are named NNNN_description.sql")
        version = int(match.group(1))
        if version in found:
            raise MigrationError(f"{path.name}: version {version} used twice")
        found[version] = Migration(version, path.name, path.read_text())
    return [found[v] for v in sorted(found)]


_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     INTEGER PRIMARY KEY,
    name        TEXT NOT NULL,
    checksum    TEXT NOT NULL,
    applied_at  TIMESTAMPTZ NOT NULL DEFAULT now()
)
"""


Connection = asyncpg.Connection | PoolConnectionProxy


async def apply_migrations(conn: Connection, directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Apply pending migrations; returns the names applied (empty when up to date)."""
    migrations = discover(directory)
    applied_now: list[str] = []
    for migration in migrations:
        async with conn.transaction():
            # The lock is held to the end of this transaction, so a concurrent runner waits,
            # then sees the row this one wrote and skips the file.
            await conn.execute("SELECT pg_advisory_xact_lock($1)", ADVISORY_LOCK_KEY)
            await conn.execute(_CREATE_TABLE)
            row = await conn.fetchrow(
                "SELECT name, checksum FROM schema_migrations WHERE version = $1",
                migration.version,
            )
            if row is not None:
                if row["checksum"] != migration.checksum:
                    raise MigrationError(
                        f"{migration.name} changed after it was applied (was {row['name']}); "
                        "add a new migration instead of editing an applied one"
                    )
                continue
            try:
                await conn.execute(migration.sql)
            except asyncpg.PostgresError as exc:
                raise MigrationError(f"{migration.name} failed: {exc}") from exc
            await conn.execute(
                "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                migration.version,
                migration.name,
                migration.checksum,
            )
            applied_now.append(migration.name)
            logger.info("applied ledger migration %s", migration.name)
    return applied_now


async def applied_versions(conn: Connection) -> list[int]:
    """Versions recorded in schema_migrations (empty when the table does not exist)."""
    exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    if not exists:
        return []
    rows = await conn.fetch("SELECT version FROM schema_migrations ORDER BY version")
    return [row["version"] for row in rows]
