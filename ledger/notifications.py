"""Notifications repository: one row per alerting event (the send-once record), and the
positions currently without an active stop (since when), which the uncovered alert times.

A send holds its event's row (SELECT ... FOR UPDATE) from the claim until sent_at is written,
so two senders of one key never both post: the second waits, then sees sent_at.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from ledger.codec import Connection
from ledger.repository import Repository
from trading.broker_models import BrokerOrder
from trading.notify import Notice, UncoveredEpisode
from trading.routing import covering_stop_of

_CLAIM = """
INSERT INTO notifications (event_key, kind, severity) VALUES ($1, $2, $3)
ON CONFLICT (event_key) DO NOTHING
"""
_LOCK = "SELECT sent_at, attempts FROM notifications WHERE event_key = $1 FOR UPDATE"
_TRIED = """
UPDATE notifications SET attempts = attempts + 1, last_error = $2 WHERE event_key = $1
RETURNING attempts
"""
_SENT = """
UPDATE notifications SET attempts = attempts + 1, sent_at = $2, last_error = NULL
WHERE event_key = $1 RETURNING attempts
"""
_GET = """
SELECT event_key, kind, severity, created_at, sent_at, attempts, last_error
FROM notifications WHERE event_key = $1
"""
_SENT_KEYS = (
    "SELECT event_key FROM notifications WHERE event_key = ANY($1::text[]) AND sent_at IS NOT NULL"
)
_LAST_POLL = "SELECT observed_at FROM broker_view_poll WHERE id = 1"
_LONG_POSITIONS = "SELECT symbol, qty, open_orders FROM broker_view_symbols WHERE qty > 0"
_EPISODES = "SELECT symbol, since FROM uncovered_positions"
_OPEN_EPISODE = """
INSERT INTO uncovered_positions (symbol, since, qty, last_seen) VALUES ($1, $2, $3, $4)
ON CONFLICT (symbol) DO UPDATE SET qty = $3, last_seen = GREATEST(uncovered_positions.last_seen, $4)
"""
_END_EPISODES = "DELETE FROM uncovered_positions WHERE symbol = ANY($1::text[])"


@dataclass(frozen=True)
class NotificationRow:
    """One event's record: whether and when it went out, how often it was tried."""

    event_key: str
    kind: str
    severity: str
    created_at: datetime
    sent_at: datetime | None
    attempts: int
    last_error: str | None


class Claim:
    """An event's row, held by this sender until the transaction ends."""

    def __init__(self, conn: Connection, event_key: str, sent_at: datetime | None, attempts: int):
        self._conn = conn
        self.event_key = event_key
        self.sent_at = sent_at
        self.attempts = attempts

    @property
    def already_sent(self) -> bool:
        """True when an earlier send of this key was accepted by the receiver."""
        return self.sent_at is not None

    async def tried(self, error: str) -> None:
        """Count a try that did not get through (or was not made), and why."""
        self.attempts = int(await self._conn.fetchval(_TRIED, self.event_key, error[:500]))

    async def sent(self, at: datetime) -> None:
        """The receiver accepted it: never again under this key."""
        self.attempts = int(await self._conn.fetchval(_SENT, self.event_key, at))
        self.sent_at = at


class Notifications(Repository):
    """The send-once record of notices and the uncovered-position episodes."""

    @asynccontextmanager
    async def claim(self, notice: Notice) -> AsyncIterator[Claim]:
        """Hold the notice's row (created on first sight) for the length of the block.

        What the block records (`tried`, `sent`) is committed when it ends; a block that
        raises or is cancelled (the worker stopping mid-send) rolls back and leaves the row
        as it was, unsent, for the next attempt.
        """
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(_CLAIM, notice.event_key, notice.kind.value, notice.severity.value)
            row = await conn.fetchrow(_LOCK, notice.event_key)
            assert row is not None  # inserted or already there, and rows are never deleted
            yield Claim(conn, notice.event_key, row["sent_at"], row["attempts"])

    async def get(self, event_key: str) -> NotificationRow | None:
        """One event's record."""
        row = await self._pool.fetchrow(_GET, event_key)
        return NotificationRow(**dict(row)) if row is not None else None

    async def sent_keys(self, event_keys: Iterable[str]) -> set[str]:
        """Those of these keys that have gone out."""
        rows = await self._pool.fetch(_SENT_KEYS, list(event_keys))
        return {r["event_key"] for r in rows}

    async def uncovered_now(self) -> tuple[datetime | None, dict[str, Decimal]]:
        """The last stored broker poll's time (None: no poll yet) and its long positions that
        no active stop covers: symbol -> quantity."""
        async with self._pool.acquire() as conn, conn.transaction(isolation="repeatable_read"):
            observed_at = await conn.fetchval(_LAST_POLL)
            rows = await conn.fetch(_LONG_POSITIONS)
        uncovered: dict[str, Decimal] = {}
        for row in rows:
            orders = [BrokerOrder.model_validate(o) for o in json.loads(row["open_orders"])]
            if covering_stop_of(orders, row["symbol"], row["qty"]) is None:
                uncovered[row["symbol"]] = row["qty"]
        return observed_at, uncovered

    async def episodes(self) -> dict[str, datetime]:
        """Open uncovered episodes: symbol -> since."""
        return {r["symbol"]: r["since"] for r in await self._pool.fetch(_EPISODES)}

    async def record_episodes(
        self, open_episodes: Iterable[UncoveredEpisode], ended: Iterable[str], seen_at: datetime
    ) -> None:
        """Keep the open episodes (an existing one keeps its start) and drop the ended ones."""
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.executemany(
                _OPEN_EPISODE, [(e.symbol, e.since, e.qty, seen_at) for e in open_episodes]
            )
            await conn.execute(_END_EPISODES, list(ended))
