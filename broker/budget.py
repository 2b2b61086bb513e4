"""BrokerBudget: one broker-call budget per Alpaca account, shared through PostgreSQL.

Alpaca counts requests per API key, so every process using the same keys (all workers, the
CLI) records its calls in `broker_calls` (migration 0003) and decides under one advisory lock
per account: together they stay inside one sliding 60 s window, where private per-process
buckets would allow N x the limit. The rules are trading/broker_budget.py's. A budget that
cannot reach its database keeps counting in this process - protective orders never wait on
PostgreSQL - and says so once in the log.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import asyncpg

from broker.endpoint import BrokerEndpoint
from broker.errors import BudgetExhausted
from ledger.codec import Connection
from trading.broker_budget import (
    WINDOW,
    BrokerLimitSeen,
    BudgetConfig,
    BudgetState,
    BudgetView,
    Priority,
    SpentCall,
    Verdict,
    account_key,
    block_after_429,
    budget_view,
    decide,
)

logger = logging.getLogger(__name__)
T = TypeVar("T")

# pg_advisory_xact_lock(class, id): a class of our own, so no other lock of the ledger collides.
LOCK_CLASS = 0x6274_6267  # "btbg"
DB_TIMEOUT_S = 2.0  # a budget question that takes longer is answered in process
DB_RETRY_AFTER_S = 10.0  # after a failure, ask PostgreSQL again this much later
# A whole New York day of calls stays, for `report day`'s calls per minute (the window query
# reads only the last minute, by its (account, at) index).
KEEP_CALLS = timedelta(hours=26)
PRUNE_EVERY = 50  # grants between two prunes of old rows, per process
JITTER_S = 0.05  # spreads callers that wake for the same freed slot
SHARED_FAILURES = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)

_NOW = "SELECT clock_timestamp()"
_WINDOW = """
SELECT at, priority, slots FROM broker_calls WHERE account = $1 AND at > $2
"""
_STATE = """
SELECT blocked_until, blocked_reason, broker_limit, broker_remaining, broker_reset_at, observed_at
FROM broker_budget WHERE account = $1
"""
_INSERT_CALL = """
INSERT INTO broker_calls (account, at, priority, slots, call) VALUES ($1, $2, $3, $4, $5)
"""
_PRUNE = "DELETE FROM broker_calls WHERE account = $1 AND at < $2"
_LEARN = """
INSERT INTO broker_budget
    (account, broker_limit, broker_remaining, broker_reset_at, observed_at)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (account) DO UPDATE SET
    broker_limit = EXCLUDED.broker_limit,
    broker_remaining = EXCLUDED.broker_remaining,
    broker_reset_at = EXCLUDED.broker_reset_at,
    observed_at = EXCLUDED.observed_at
WHERE broker_budget.observed_at IS NULL OR broker_budget.observed_at <= EXCLUDED.observed_at
"""
_BLOCK = """
INSERT INTO broker_budget (account, blocked_until, blocked_reason) VALUES ($1, $2, $3)
ON CONFLICT (account) DO UPDATE SET
    blocked_until = EXCLUDED.blocked_until,
    blocked_reason = EXCLUDED.blocked_reason
WHERE broker_budget.blocked_until IS NULL OR broker_budget.blocked_until < EXCLUDED.blocked_until
"""


class _SharedWindow:
    """The window in PostgreSQL, every process's calls in it; decisions under an advisory lock."""

    def __init__(self, pool: asyncpg.Pool, account: str) -> None:
        self._pool = pool
        self._account = account
        self._lock_id = int.from_bytes(bytes.fromhex(account)[:4], "big", signed=True)
        self._grants = 0

    async def take(
        self, priority: Priority, slots: int, call: str, config: BudgetConfig
    ) -> Verdict:
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1, $2)", LOCK_CLASS, self._lock_id)
            now, calls, state = await self._read(conn)
            verdict = decide(calls, state, priority, slots, now, config)
            if verdict.granted:
                await conn.execute(_INSERT_CALL, self._account, now, priority.value, slots, call)
                self._grants += 1
                if self._grants % PRUNE_EVERY == 1:
                    await conn.execute(_PRUNE, self._account, now - KEEP_CALLS)
        return verdict

    async def charge(self, priority: Priority, slots: int, call: str) -> None:
        async with self._pool.acquire() as conn:
            now = await conn.fetchval(_NOW)
            await conn.execute(_INSERT_CALL, self._account, now, priority.value, slots, call)

    async def learn(self, seen: BrokerLimitSeen) -> None:
        await self._pool.execute(
            _LEARN, self._account, seen.limit, seen.remaining, seen.reset_at, seen.observed_at
        )

    async def block(self, reset_at: datetime | None, reason: str) -> None:
        async with self._pool.acquire() as conn:
            until = block_after_429(reset_at, await conn.fetchval(_NOW))
            await conn.execute(_BLOCK, self._account, until, reason)

    async def view(self, config: BudgetConfig) -> BudgetView:
        async with self._pool.acquire() as conn:
            now, calls, state = await self._read(conn)
        return budget_view(calls, state, now, config, shared=True)

    async def _read(self, conn: Connection) -> tuple[datetime, list[SpentCall], BudgetState]:
        now: datetime = await conn.fetchval(_NOW)
        rows = await conn.fetch(_WINDOW, self._account, now - WINDOW)
        calls = [
            SpentCall(at=r["at"], priority=Priority(r["priority"]), slots=r["slots"]) for r in rows
        ]
        row = await conn.fetchrow(_STATE, self._account)
        return now, calls, _state_of(row)


def _state_of(row: asyncpg.Record | None) -> BudgetState:
    if row is None:
        return BudgetState()
    seen = None
    if row["observed_at"] is not None:
        seen = BrokerLimitSeen(
            limit=row["broker_limit"],
            remaining=row["broker_remaining"],
            reset_at=row["broker_reset_at"],
            observed_at=row["observed_at"],
        )
    return BudgetState(
        blocked_until=row["blocked_until"], blocked_reason=row["blocked_reason"], broker=seen
    )


class _LocalWindow:
    """This process's own calls: the fallback when PostgreSQL cannot be reached."""

    def __init__(self) -> None:
        self._calls: deque[SpentCall] = deque()
        self._state = BudgetState()

    async def take(
        self, priority: Priority, slots: int, call: str, config: BudgetConfig
    ) -> Verdict:
        now = self._pruned()
        verdict = decide(self._calls, self._state, priority, slots, now, config)
        if verdict.granted:
            self._calls.append(SpentCall(at=now, priority=priority, slots=slots))
        return verdict

    async def charge(self, priority: Priority, slots: int, call: str) -> None:
        self._calls.append(SpentCall(at=self._pruned(), priority=priority, slots=slots))

    async def learn(self, seen: BrokerLimitSeen) -> None:
        latest = self._state.broker
        if latest is None or latest.observed_at <= seen.observed_at:
            self._state = self._state.model_copy(update={"broker": seen})

    async def block(self, reset_at: datetime | None, reason: str) -> None:
        until = block_after_429(reset_at, datetime.now(UTC))
        if self._state.blocked_until is None or self._state.blocked_until < until:
            update = {"blocked_until": until, "blocked_reason": reason}
            self._state = self._state.model_copy(update=update)

    async def view(self, config: BudgetConfig) -> BudgetView:
        return budget_view(self._calls, self._state, self._pruned(), config, shared=False)

    def _pruned(self) -> datetime:
        now = datetime.now(UTC)
        while self._calls and self._calls[0].at <= now - WINDOW:
            self._calls.popleft()
        return now


class BrokerBudget:
    """The account-wide broker-call budget: ask before each call, tell it what the broker said."""

    def __init__(self, pool: asyncpg.Pool | None, account: str, config: BudgetConfig) -> None:
        self.account = account
        self.config = config
        self._shared = _SharedWindow(pool, account) if pool is not None else None
        self._local = _LocalWindow()
        self._shared_down_until = 0.0
        self._shared_down = pool is None
        if pool is None:
            logger.warning(
                "broker budget %s: no PostgreSQL; counting broker calls in this process only",
                account,
            )

    @classmethod
    def for_endpoint(
        cls, pool: asyncpg.Pool | None, endpoint: BrokerEndpoint, config: BudgetConfig
    ) -> BrokerBudget:
        """The budget of the endpoint's API key (named by a digest, never the key)."""
        return cls(
            pool, account_key(endpoint.trading_url, endpoint.key_id.get_secret_value()), config
        )

    async def acquire(self, priority: Priority, call: str, slots: int = 1) -> None:
        """Take `slots` calls now or within the priority's wait; else raise BudgetExhausted."""
        deadline = time.monotonic() + self.config.patience(priority).total_seconds()
        while True:
            verdict = await self._take(priority, slots, call)
            if verdict.granted:
                return
            wait_s = verdict.retry_after.total_seconds() + random.uniform(0, JITTER_S)
            if time.monotonic() + wait_s > deadline:
                raise BudgetExhausted(
                    f"{call} not sent ({priority.value}): {verdict.reason}; a slot frees in "
                    f"{verdict.retry_after.total_seconds():.1f} s",
                    retry_after=verdict.retry_after,
                    broker_limited=verdict.broker_limited,
                )
            await asyncio.sleep(wait_s)

    async def charge(self, priority: Priority, call: str, slots: int) -> None:
        """Count requests already sent without asking (a call that made more than it took)."""
        if slots <= 0:
            return
        await self._local.charge(priority, slots, call)
        await self._on_shared(lambda shared: shared.charge(priority, slots, call))

    async def learn(self, seen: BrokerLimitSeen) -> None:
        """Keep the broker's own count (X-RateLimit-*); at 0 every caller waits for the reset."""
        await self._local.learn(seen)
        await self._on_shared(lambda shared: shared.learn(seen))

    async def block(self, reset_at: datetime | None, reason: str) -> None:
        """The broker answered 429: every process waits until its reset before calling again."""
        logger.warning("broker budget %s: %s; waiting for the reset", self.account, reason)
        await self._local.block(reset_at, reason)
        await self._on_shared(lambda shared: shared.block(reset_at, reason))

    async def view(self) -> BudgetView:
        """Usage of the last 60 s by priority, what is left, the broker's count, any block."""
        shared = await self._on_shared(lambda window: window.view(self.config))
        return shared if shared is not None else await self._local.view(self.config)

    async def _take(self, priority: Priority, slots: int, call: str) -> Verdict:
        verdict = await self._on_shared(
            lambda shared: shared.take(priority, slots, call, self.config)
        )
        if verdict is None:
            return await self._local.take(priority, slots, call, self.config)
        if verdict.granted:  # this process remembers its own calls for a fallback
            await self._local.charge(priority, slots, call)
        return verdict

    async def _on_shared(self, action: Callable[[_SharedWindow], Awaitable[T]]) -> T | None:
        """Run on the shared window; None when PostgreSQL cannot answer now."""
        if self._shared is None or time.monotonic() < self._shared_down_until:
            return None
        try:
            async with asyncio.timeout(DB_TIMEOUT_S):
                result = await action(self._shared)
        except SHARED_FAILURES as exc:
            self._shared_down_until = time.monotonic() + DB_RETRY_AFTER_S
            if not self._shared_down:
                self._shared_down = True
                logger.warning(
                    "broker budget %s: PostgreSQL unavailable (%s); counting broker calls in "
                    "this process only until it is back",
                    self.account,
                    type(exc).__name__,
                )
            return None
        if self._shared_down:
            self._shared_down = False
            logger.info("broker budget %s: PostgreSQL is back; the budget is shared", self.account)
        return result
