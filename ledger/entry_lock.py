"""One option entry at a time across every process on the ledger: a PostgreSQL advisory lock.

`condor open` checks a condor's risk against the ledger's open option trades and then writes
the new trade's row. Two commands at the same moment would each check against rows that do
not hold the other's risk yet, and both could pass the heat cap. Holding this lock from the
check until the row is written makes them take turns: the second checks against the first's
row. The lock is a session lock on a connection of its own, released when the block ends (or
by PostgreSQL when that connection dies), and waiting for it is bounded by `wait`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import asyncpg

# Any constant shared by every process (ledger/migrate.py's key is another).
OPTION_ENTRY_LOCK_KEY = 0x6474_6F70_7465_6E  # "dtopten"
DEFAULT_WAIT = timedelta(seconds=30)


class EntryLockBusy(Exception):
    """Another option entry held the lock for longer than the wait."""


@asynccontextmanager
async def option_entry_lock(
    pool: asyncpg.Pool, wait: timedelta = DEFAULT_WAIT
) -> AsyncIterator[None]:
    """Hold the option-entry lock for the block; EntryLockBusy when it is not free in `wait`."""
    async with pool.acquire() as conn:
        millis = max(int(wait.total_seconds() * 1000), 1)
        await conn.execute(f"SET lock_timeout = {millis}")
        try:
            await conn.execute("SELECT pg_advisory_lock($1)", OPTION_ENTRY_LOCK_KEY)
        except asyncpg.LockNotAvailableError:
            raise EntryLockBusy(
                f"another condor open held the option-entry lock for over "
                f"{wait.total_seconds():.0f}s"
            ) from None
        finally:
            await conn.execute("RESET lock_timeout")
        try:
            yield
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", OPTION_ENTRY_LOCK_KEY)
