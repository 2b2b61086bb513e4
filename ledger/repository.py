"""What every ledger repository shares: its pool, and the one shape of an idempotent write."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from ledger.codec import Connection
from trading.ledger_records import LedgerRecordMissing


async def write_or_current(
    conn: Connection, write: str, current: str, args: Sequence[object], what: str
) -> tuple[asyncpg.Record, bool]:
    """The row after `write`, and whether `write` changed it.

    `write` returns the row it inserted or updated, or nothing when a guard (ON CONFLICT,
    first-wins, newest-wins) left the row alone; then `current` reads the row as it stands.
    Both take the row's key as $1, `args[0]`. No row at all raises LedgerRecordMissing.
    """
    record = await conn.fetchrow(write, *args)
    if record is not None:
        return record, True
    record = await conn.fetchrow(current, args[0])
    if record is None:
        raise LedgerRecordMissing(f"no {what} {args[0]!r} in the ledger")
    return record, False


class Repository:
    """A ledger repository over an asyncpg pool."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def _write_once(
        self, write: str, current: str, args: Sequence[object], what: str
    ) -> tuple[asyncpg.Record, bool]:
        """`write_or_current` in a transaction of its own."""
        async with self._pool.acquire() as conn, conn.transaction():
            return await write_or_current(conn, write, current, args, what)
