"""Prelive runs (one row per `starter.py prelive`) and the poll time readiness reads."""

from __future__ import annotations

import json
from datetime import datetime

import asyncpg

from ledger.repository import Repository
from trading.prelive import CheckOutcome, PreliveReport, PreliveRunRecord

_COLUMNS = "id, at, config_digest, passed, checks"
_INSERT = f"""
INSERT INTO prelive_runs (at, config_digest, passed, checks) VALUES ($1, $2, $3, $4::jsonb)
RETURNING {_COLUMNS}
"""
_LAST_FOR = f"""
SELECT {_COLUMNS} FROM prelive_runs WHERE config_digest = $1 ORDER BY at DESC, id DESC LIMIT 1
"""
# BrokerSync's last successful poll (ledger/broker_view.py writes it; one row, id 1).
_LAST_POLL = "SELECT observed_at FROM broker_view_poll WHERE id = 1"


def _run(record: asyncpg.Record) -> PreliveRunRecord:
    checks = record["checks"]
    raw = json.loads(checks) if isinstance(checks, str) else checks
    return PreliveRunRecord(
        id=record["id"],
        at=record["at"],
        config_digest=record["config_digest"],
        passed=record["passed"],
        checks=[CheckOutcome.model_validate(c) for c in raw],
    )


class PreliveRuns(Repository):
    """Record prelive runs; read the last one of a configuration."""

    async def record(self, report: PreliveReport) -> PreliveRunRecord:
        """Store one run with its checks."""
        checks = json.dumps([c.model_dump(mode="json") for c in report.checks])
        row = await self._pool.fetchrow(
            _INSERT, report.at, report.config_digest, report.passed, checks
        )
        assert row is not None
        return _run(row)

    async def last_for(self, config_digest: str) -> PreliveRunRecord | None:
        """The newest run of this configuration, or None."""
        row = await self._pool.fetchrow(_LAST_FOR, config_digest)
        return _run(row) if row is not None else None


async def last_truth_poll_at(pool: asyncpg.Pool) -> datetime | None:
    """When BrokerSync's last successful poll read the broker (None: never)."""
    observed: datetime | None = await pool.fetchval(_LAST_POLL)
    return observed
