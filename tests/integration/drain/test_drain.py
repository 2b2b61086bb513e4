"""ScoreDrainWorkflow on a real dev server and PostgreSQL: each signal ends SCORED or ERROR."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager

import asyncpg
import pytest
from temporalio.client import Client, WorkflowFailureError
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.exceptions import ActivityError, ApplicationError, WorkflowAlreadyStartedError
from temporalio.worker import Worker

from activities.ledger import LedgerActivities
from activities.scoring import ScoringActivities
from broker.endpoint import BrokerEndpoint
from cli.drain import start_or_join_drain
from contracts import drain
from trading.ledger_records import SignalStatus
from trading.scoring import (
    DrainInput,
    DrainProgress,
    DrainResult,
    MomentumVolumeScorer,
    ScoreResult,
    ScorerRegistry,
    SignalToScore,
)
from worker import create_worker
from workflows.drain import ScoreDrainWorkflow

pytestmark = pytest.mark.integration

# 1,000 signals: every 20th lacks momentum, the next has a word for it; the rest are valid.
_BULK_INSERT = """
INSERT INTO signals (signal_key, symbol, strategy, side, features)
SELECT format('bulk-%s', lpad(i::text, 4, '0')), 'SYM' || (i % 50), 'breakout',
       CASE WHEN i % 3 = 0 THEN 'sell' ELSE 'buy' END,
       CASE
           WHEN i % 20 = 0 THEN jsonb_build_object('volume_ratio', 1.5)
           WHEN i % 20 = 1 THEN jsonb_build_object('momentum', 'strong')
           ELSE jsonb_build_object('momentum', (i % 101 - 50) / 1000.0,
                                   'volume_ratio', 0.5 + (i % 7) / 2.0,
                                   'rsi', i % 100)
       END
FROM generate_series(0, $1::int - 1) AS i
"""


async def _insert_bulk(pool: asyncpg.Pool, count: int) -> None:
    await pool.execute(_BULK_INSERT, count)


async def _status_counts(pool: asyncpg.Pool) -> dict[str, int]:
    rows = await pool.fetch("SELECT status, count(*) AS n FROM signals GROUP BY status")
    return {r["status"]: r["n"] for r in rows}


class RecordingScorer:
    """The default scorer, slowed a little, counting how often it scored each signal."""

    def __init__(self, delay: float = 0.0, failing: Iterable[str] = ()) -> None:
        self.name = "recording"
        self.calls: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._delay = delay
        self._failing = set(failing)
        self._inner = MomentumVolumeScorer()

    def score(self, signal: SignalToScore) -> ScoreResult:
        with self._lock:
            self.calls[signal.signal_key] += 1
        if self._delay:
            time.sleep(self._delay)
        if signal.signal_key in self._failing:
            raise RuntimeError("model service unavailable")
        return self._inner.score(signal)


@asynccontextmanager
async def _scoring_worker(
    client: Client, pool: asyncpg.Pool, task_queue: str, scorer: RecordingScorer
) -> AsyncIterator[Worker]:
    """A worker replica with the drain, the ledger activities and a test scorer."""
    ledger = LedgerActivities(pool)
    worker = Worker(
        client,
        task_queue=task_queue,
        workflows=[ScoreDrainWorkflow],
        activities=[
            ledger.expire_signals,
            ledger.signal_funnel,
            ScoringActivities(pool, ScorerRegistry([scorer])).score_signals,
        ],
    )
    async with worker:
        yield worker


async def _drain(client: Client, task_queue: str, request: DrainInput) -> DrainResult:
    return await client.execute_workflow(
        ScoreDrainWorkflow.run, request, id=f"drain-{uuid.uuid4()}", task_queue=task_queue
    )


async def test_a_thousand_pending_signals_end_scored_or_error(
    client: Client,
    fresh_pool: asyncpg.Pool,
    task_queue: str,
    activity_executor: ThreadPoolExecutor,
    broker_endpoint: BrokerEndpoint,
) -> None:
    await _insert_bulk(fresh_pool, 1000)
    async with create_worker(client, fresh_pool, task_queue, activity_executor, broker_endpoint):
        # A drain stops at its limit: 250 in batches of 100, 100, 50.
        first = await _drain(client, task_queue, DrainInput(limit=250, batch=100))
        assert (first.claimed, first.batches, first.remaining_pending) == (250, 3, 750)

        handle = await client.start_workflow(
            ScoreDrainWorkflow.run,
            DrainInput(batch=100),
            id=f"drain-{uuid.uuid4()}",
            task_queue=task_queue,
        )
        rest = await handle.result()
        progress = await handle.query(drain.PROGRESS.name, result_type=DrainProgress)

    assert await _status_counts(fresh_pool) == {"SCORED": 900, "ERROR": 100}
    assert first.claimed + rest.claimed == 1000
    assert first.scored + rest.scored == 900
    assert first.error + rest.error == 100
    assert rest.remaining_pending == 0 and rest.expired == 0
    assert rest.funnel.all_time.created == 1000 and rest.funnel.all_time.pending == 0
    merged = Counter(first.error_codes) + Counter(rest.error_codes)
    assert merged == {"missing_feature": 50, "invalid_feature": 50}
    assert progress.phase == "done" and progress.claimed == rest.claimed

    # Each invalid signal says why; each scored one has its score; all were claimed once.
    missing = await fresh_pool.fetchrow(
        "SELECT status, last_error, score FROM signals WHERE signal_key = 'bulk-0020'"
    )
    assert dict(missing) == {
        "status": "ERROR",
        "last_error": "missing_feature: feature 'momentum' is required",
        "score": None,
    }
    worded = await fresh_pool.fetchval(
        "SELECT last_error FROM signals WHERE signal_key = 'bulk-0021'"
    )
    assert worded == "invalid_feature: feature 'momentum' must be a number, got str"
    assert (
        await fresh_pool.fetchval(
            "SELECT count(*) FROM signals WHERE status = 'SCORED' AND "
            "(score IS NULL OR confidence IS NULL OR scored_at IS NULL)"
        )
        == 0
    )
    assert await fresh_pool.fetchval("SELECT count(*) FROM signals WHERE attempts <> 1") == 0


async def test_concurrent_drains_never_score_a_signal_twice(
    client: Client, fresh_database_url: str, task_queue: str
) -> None:
    signals_total = 600
    scorer = RecordingScorer(delay=0.003)
    pool = await asyncpg.create_pool(fresh_database_url, min_size=2, max_size=8)
    fixed_id = f"score-drain-{uuid.uuid4()}"
    request = DrainInput(batch=20, scorer="recording")
    try:
        await _insert_bulk(pool, signals_total)
        # One worker runs the drains' batch activities concurrently (separate connections).
        async with _scoring_worker(client, pool, task_queue, scorer):
            # Two manual triggers at once: one starts the fixed-id drain, the other joins it.
            (h1, started1), (h2, started2) = await asyncio.gather(
                start_or_join_drain(client, request, task_queue, fixed_id),
                start_or_join_drain(client, request, task_queue, fixed_id),
            )
            assert sorted([started1, started2]) == [False, True]
            started, joined = (h1, h2) if started1 else (h2, h1)
            assert joined.run_id == started.result_run_id
            # The raw policies: USE_EXISTING hands back the running drain, FAIL refuses.
            existing = await client.start_workflow(
                ScoreDrainWorkflow.run,
                request,
                id=fixed_id,
                task_queue=task_queue,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            )
            assert existing.result_run_id == started.result_run_id
            with pytest.raises(WorkflowAlreadyStartedError):
                await client.start_workflow(
                    ScoreDrainWorkflow.run,
                    request,
                    id=fixed_id,
                    task_queue=task_queue,
                    id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                )
            # And two drains under different ids (a schedule and a manual run) on top.
            others = [
                await client.start_workflow(
                    ScoreDrainWorkflow.run,
                    request,
                    id=f"drain-{uuid.uuid4()}",
                    task_queue=task_queue,
                )
                for _ in range(2)
            ]
            results = await asyncio.gather(
                started.result(), joined.result(), *(h.result() for h in others)
            )
    finally:
        await pool.close()

    fixed, same_fixed, *other_results = results
    assert same_fixed == fixed
    distinct = [fixed, *other_results]
    # The scorer ran exactly once per signal, across all three drains.
    assert len(scorer.calls) == signals_total and set(scorer.calls.values()) == {1}
    assert sum(r.claimed for r in distinct) == signals_total
    assert sum(r.scored + r.error for r in distinct) == signals_total
    assert sum(r.already_final for r in distinct) == 0
    assert sum(1 for r in distinct if r.claimed > 0) >= 2, "the drains did not overlap"
    conn = await asyncpg.connect(fresh_database_url)
    try:
        counts = {
            r["status"]: r["n"]
            for r in await conn.fetch("SELECT status, count(*) AS n FROM signals GROUP BY status")
        }
        twice = await conn.fetchval("SELECT count(*) FROM signals WHERE attempts <> 1")
    finally:
        await conn.close()
    assert counts == {"SCORED": 540, "ERROR": 60} and twice == 0


async def test_the_attempts_cap_and_maximum_age_end_in_error(
    client: Client,
    fresh_pool: asyncpg.Pool,
    task_queue: str,
    activity_executor: ThreadPoolExecutor,
    broker_endpoint: BrokerEndpoint,
) -> None:
    insert = """
    INSERT INTO signals (signal_key, symbol, strategy, features, attempts, claimed_until,
                         created_at)
    VALUES ($1, 'AAPL', 'breakout', '{"momentum": 0.02}'::jsonb, $2,
            now() + $3::int * interval '1 second', now() - $4::int * interval '1 second')
    """
    # Three drains died holding it (lease lapsed): it has had all its attempts.
    await fresh_pool.execute(insert, "capped", 3, -5, 60)
    # Two days old and never scored: too old to act on.
    await fresh_pool.execute(insert, "stale", 0, -5, 2 * 86400)
    # One drain died holding it: it gets its last attempt and is scored.
    await fresh_pool.execute(insert, "retried", 2, -5, 60)
    # Another drain holds it right now: this drain leaves it alone.
    await fresh_pool.execute(insert, "held", 1, 3600, 60)

    async with create_worker(client, fresh_pool, task_queue, activity_executor, broker_endpoint):
        result = await _drain(client, task_queue, DrainInput(max_attempts=3))

    rows = {
        r["signal_key"]: (r["status"], r["last_error"], r["attempts"])
        for r in await fresh_pool.fetch(
            "SELECT signal_key, status, last_error, attempts FROM signals"
        )
    }
    assert rows == {
        "capped": ("ERROR", "gave up after 3 scoring attempts", 3),
        "stale": ("ERROR", "still pending after 21600 s", 0),
        "retried": ("SCORED", None, 3),
        "held": ("PENDING", None, 1),
    }
    assert (result.expired, result.claimed, result.scored, result.remaining_pending) == (
        2,
        1,
        1,
        1,
    )


async def test_a_failing_scorer_is_retried_until_the_attempts_cap(
    client: Client, fresh_pool: asyncpg.Pool, task_queue: str
) -> None:
    await _insert_bulk(fresh_pool, 5)
    scorer = RecordingScorer(failing=["bulk-0002"])
    request = DrainInput(scorer="recording", max_attempts=2, lease_seconds=1)
    async with _scoring_worker(client, fresh_pool, task_queue, scorer):
        first = await _drain(client, task_queue, request)
        # The failed signal stays PENDING under its lease; the others are done.
        assert (first.retry_later, first.remaining_pending) == (1, 1)
        await asyncio.sleep(1.2)  # the lease lapses
        second = await _drain(client, task_queue, request)
        assert (second.claimed, second.retry_later, second.remaining_pending) == (1, 1, 1)
        await asyncio.sleep(1.2)
        third = await _drain(client, task_queue, request)

    assert (third.claimed, third.expired, third.remaining_pending) == (0, 1, 0)
    assert scorer.calls["bulk-0002"] == 2
    failed = await fresh_pool.fetchrow(
        "SELECT status, last_error FROM signals WHERE signal_key = 'bulk-0002'"
    )
    assert dict(failed) == {
        "status": SignalStatus.ERROR.value,
        "last_error": "gave up after 2 scoring attempts",
    }
    assert "PENDING" not in await _status_counts(fresh_pool)


async def test_an_unknown_scorer_fails_the_drain_without_touching_signals(
    client: Client,
    fresh_pool: asyncpg.Pool,
    task_queue: str,
    activity_executor: ThreadPoolExecutor,
    broker_endpoint: BrokerEndpoint,
) -> None:
    await _insert_bulk(fresh_pool, 3)
    async with create_worker(client, fresh_pool, task_queue, activity_executor, broker_endpoint):
        with pytest.raises(WorkflowFailureError) as failed:
            await _drain(client, task_queue, DrainInput(scorer="no-such-scorer"))
    activity_error = failed.value.cause
    assert isinstance(activity_error, ActivityError)
    cause = activity_error.cause
    assert isinstance(cause, ApplicationError) and cause.type == "UnknownScorer"
    assert "registered: by_strategy, momentum_volume, setup" in cause.message
    assert await fresh_pool.fetchval("SELECT sum(attempts) FROM signals") == 0
    assert await _status_counts(fresh_pool) == {"PENDING": 3}
