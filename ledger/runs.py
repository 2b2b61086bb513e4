"""Run repositories: reconcile runs (start, finish) and entry runs, idempotent by run_id."""

from __future__ import annotations

import asyncpg

from ledger.repository import Repository
from trading import ledger_records as records

_RECONCILE_COLUMNS = """
    id, run_id, source, dry_run, started_at, finished_at, checked, closed, adopted, synced,
    ok, error, duration_ms
"""
_START = f"""
INSERT INTO reconcile_runs (run_id, source, dry_run, started_at)
VALUES ($1, $2, $3, COALESCE($4, now()))
ON CONFLICT (run_id) DO NOTHING
RETURNING {_RECONCILE_COLUMNS}
"""
# The first finish wins; a retried finish returns it unchanged.
_FINISH = f"""
UPDATE reconcile_runs SET
    finished_at = COALESCE($2, now()), checked = $3, closed = $4, adopted = $5, synced = $6,
    ok = $7, error = $8, duration_ms = $9
WHERE run_id = $1 AND finished_at IS NULL
RETURNING {_RECONCILE_COLUMNS}
"""
_RECONCILE_BY_ID = f"SELECT {_RECONCILE_COLUMNS} FROM reconcile_runs WHERE run_id = $1"
_RECONCILE_RECENT = f"""
SELECT {_RECONCILE_COLUMNS} FROM reconcile_runs ORDER BY started_at DESC, id DESC LIMIT $1
"""

_ENTRY_COLUMNS = "id, run_id, at, entered, skipped, reason, detail"
_ENTRY_INSERT = f"""
INSERT INTO entry_runs (run_id, at, entered, skipped, reason, detail)
VALUES ($1, COALESCE($2, now()), $3, $4, $5, $6)
ON CONFLICT (run_id) DO NOTHING
RETURNING {_ENTRY_COLUMNS}
"""
_ENTRY_BY_ID = f"SELECT {_ENTRY_COLUMNS} FROM entry_runs WHERE run_id = $1"
_ENTRY_LAST = f"SELECT {_ENTRY_COLUMNS} FROM entry_runs ORDER BY at DESC, id DESC LIMIT 1"


def _reconcile_run(record: asyncpg.Record) -> records.ReconcileRunRecord:
    return records.ReconcileRunRecord(**dict(record))


def _entry_run(record: asyncpg.Record) -> records.EntryRunRecord:
    return records.EntryRunRecord(**dict(record))


class ReconcileRuns(Repository):
    """Record reconcile runs: one row per run_id, started once and finished once."""

    async def start(self, cmd: records.ReconcileRunStart) -> records.ReconcileRunWriteResult:
        """Insert the run; with its run_id already stored, return the stored row."""
        record, applied = await self._write_once(
            _START,
            _RECONCILE_BY_ID,
            (cmd.run_id, cmd.source, cmd.dry_run, cmd.started_at),
            "reconcile run",
        )
        return records.ReconcileRunWriteResult(run=_reconcile_run(record), applied=applied)

    async def finish(self, cmd: records.ReconcileRunFinish) -> records.ReconcileRunWriteResult:
        """Record the outcome of a started run; a second finish returns the first."""
        record, applied = await self._write_once(
            _FINISH,
            _RECONCILE_BY_ID,
            (
                cmd.run_id,
                cmd.finished_at,
                cmd.checked,
                cmd.closed,
                cmd.adopted,
                cmd.synced,
                cmd.ok,
                cmd.error,
                cmd.duration_ms,
            ),
            "reconcile run",
        )
        return records.ReconcileRunWriteResult(run=_reconcile_run(record), applied=applied)

    async def recent(self, limit: int) -> list[records.ReconcileRunRecord]:
        """The newest runs first."""
        return [_reconcile_run(r) for r in await self._pool.fetch(_RECONCILE_RECENT, limit)]


class EntryRuns(Repository):
    """Record entry passes: one row per run_id."""

    async def record(self, cmd: records.EntryRunCreate) -> records.EntryRunWriteResult:
        """Insert the run; with its run_id already stored, return the stored row."""
        record, applied = await self._write_once(
            _ENTRY_INSERT,
            _ENTRY_BY_ID,
            (cmd.run_id, cmd.at, cmd.entered, cmd.skipped, cmd.reason, cmd.detail),
            "entry run",
        )
        return records.EntryRunWriteResult(run=_entry_run(record), applied=applied)

    async def last(self) -> records.EntryRunRecord | None:
        """The newest entry run, or None."""
        record = await self._pool.fetchrow(_ENTRY_LAST)
        return _entry_run(record) if record else None
