"""Risk events, reconcile runs and entry runs on real PostgreSQL: one row per key."""

from __future__ import annotations

import asyncpg
import pytest

from ledger.risk import RiskEvents
from ledger.runs import EntryRuns, ReconcileRuns
from tests.integration.ledger.factories import at, uid
from trading.ledger_records import (
    EntryRunCreate,
    LedgerRecordMissing,
    ReconcileRunFinish,
    ReconcileRunStart,
    RiskEventCreate,
    RiskSeverity,
)

pytestmark = pytest.mark.integration


async def test_risk_events_are_recorded_once_and_listed_newest_first(pool: asyncpg.Pool) -> None:
    risk = RiskEvents(pool)
    key = uid("gap-")
    event = RiskEventCreate(
        event_key=key,
        kind="protection_gap",
        severity=RiskSeverity.CRITICAL,
        trade_id="t-1",
        symbol="AAPL",
        detail={"gap_ms": 420},
        at=at(100),
    )
    first = await risk.record(event)
    again = await risk.record(event.model_copy(update={"kind": "other"}))
    newer = await risk.record(RiskEventCreate(event_key=uid("k-"), kind="daily_loss", at=at(200)))

    assert first.applied and not again.applied and again.event == first.event
    assert first.event.detail == {"gap_ms": 420}
    assert first.event.severity is RiskSeverity.CRITICAL and first.event.at == at(100)
    recent = await risk.recent(limit=2)
    assert [e.event_key for e in recent] == [newer.event.event_key, key]
    assert await pool.fetchval("SELECT count(*) FROM risk_events WHERE event_key = $1", key) == 1


async def test_reconcile_runs_start_once_finish_once(pool: asyncpg.Pool) -> None:
    runs = ReconcileRuns(pool)
    run_id = uid("rc-")
    start = ReconcileRunStart(run_id=run_id, source="market_loop", started_at=at(0))
    started = await runs.start(start)
    restarted = await runs.start(start.model_copy(update={"source": "cli"}))
    assert started.applied and not restarted.applied and restarted.run == started.run
    assert started.run.finished_at is None and started.run.ok is None

    finish = ReconcileRunFinish(
        run_id=run_id,
        checked=5,
        closed=1,
        adopted=1,
        synced=2,
        ok=True,
        duration_ms=812,
        finished_at=at(1),
    )
    finished = await runs.finish(finish)
    refinished = await runs.finish(finish.model_copy(update={"ok": False, "error": "late"}))

    assert finished.applied and not refinished.applied and refinished.run == finished.run
    run = finished.run
    assert (run.checked, run.closed, run.adopted, run.synced, run.ok, run.error) == (
        5,
        1,
        1,
        2,
        True,
        None,
    )
    assert (run.duration_ms, run.finished_at, run.source) == (812, at(1), "market_loop")
    assert (await runs.recent(limit=1))[0].run_id == run_id


async def test_finishing_an_unknown_reconcile_run_raises(pool: asyncpg.Pool) -> None:
    with pytest.raises(LedgerRecordMissing, match="no reconcile run"):
        await ReconcileRuns(pool).finish(
            ReconcileRunFinish(run_id="never-started", ok=True, duration_ms=1)
        )


async def test_entry_runs_are_recorded_once_and_the_last_is_returned(pool: asyncpg.Pool) -> None:
    runs = EntryRuns(pool)
    older = EntryRunCreate(run_id=uid("er-"), entered=1, skipped=0, at=at(10))
    newer = EntryRunCreate(
        run_id=uid("er-"), entered=0, skipped=3, reason="HALTED", detail="control", at=at(20)
    )
    assert (await runs.record(newer)).applied
    assert (await runs.record(older)).applied
    again = await runs.record(newer.model_copy(update={"entered": 9}))

    assert not again.applied and again.run.entered == 0
    last = await runs.last()
    assert last is not None
    assert (last.run_id, last.skipped, last.reason, last.detail) == (
        newer.run_id,
        3,
        "HALTED",
        "control",
    )
