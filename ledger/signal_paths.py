"""Signal paths: the market loop's decision on each signal, and the recent paths read back."""

from __future__ import annotations

from collections.abc import Sequence

from ledger.audit import insert_audit
from ledger.repository import Repository
from trading.ledger_records import SignalStatus
from trading.models import AuditEntry
from trading.signal_path import (
    DecisionKind,
    SignalDecision,
    SignalPath,
    SignalPathQuery,
    SignalPaths,
    reason_key,
)

_DECIDE = """
UPDATE signals AS s SET
    rank = d.rank, rank_score = d.rank_score, decision = d.decision,
    decision_reason = d.reason, decision_detail = d.detail, decided_at = d.at,
    decided_run = d.run_id, trade_id = COALESCE(d.trade_id, s.trade_id), updated_at = now()
FROM unnest($1::text[], $2::int[], $3::numeric[], $4::text[], $5::text[], $6::text[],
            $7::timestamptz[], $8::text[], $9::text[])
     AS d(signal_key, rank, rank_score, decision, reason, detail, at, run_id, trade_id)
WHERE s.signal_key = d.signal_key AND (s.decided_at IS NULL OR s.decided_at <= d.at)
"""

_PATHS = """
SELECT signal_key, symbol, strategy, status, score, rank, rank_score, decision,
       decision_reason, decision_detail, decided_at, trade_id, created_at
FROM signals
WHERE created_at >= now() - $1::int * interval '1 hour'
ORDER BY COALESCE(decided_at, created_at) DESC, id DESC
LIMIT $2
"""

_REASONS = """
SELECT decision, decision_reason, count(*) AS n
FROM signals
WHERE decided_at >= now() - $1::int * interval '1 hour'
GROUP BY decision, decision_reason
"""


class SignalPathsRepository(Repository):
    """Write each run's decisions on its signals; read recent paths and counts by reason."""

    async def record(
        self, decisions: list[SignalDecision], audits: Sequence[AuditEntry] = ()
    ) -> int:
        """Store each decision on its signal (a newer stored decision wins) and append the
        audit rows (once each by event key), in one transaction; signal rows changed."""
        if not decisions and not audits:
            return 0
        async with self._pool.acquire() as conn, conn.transaction():
            for entry in audits:
                await insert_audit(conn, entry)
            if not decisions:
                return 0
            status = await conn.execute(
                _DECIDE,
                [d.signal_key for d in decisions],
                [d.rank for d in decisions],
                [d.rank_score for d in decisions],
                [d.decision.value for d in decisions],
                [d.reason for d in decisions],
                [d.detail[:2000] for d in decisions],
                [d.at for d in decisions],
                [d.run_id for d in decisions],
                [d.trade_id for d in decisions],
            )
        return int(status.rsplit(" ", 1)[-1])

    async def paths(self, query: SignalPathQuery) -> SignalPaths:
        """The newest paths and the recent decisions counted by reason."""
        rows = await self._pool.fetch(_PATHS, query.window_hours, query.limit)
        counts = await self._pool.fetch(_REASONS, query.window_hours)
        reasons: dict[str, int] = {}
        for row in counts:
            key = reason_key(DecisionKind(row["decision"]), row["decision_reason"] or "")
            reasons[key] = reasons.get(key, 0) + int(row["n"])
        return SignalPaths(
            window_hours=query.window_hours,
            paths=[
                SignalPath(
                    signal_key=r["signal_key"],
                    symbol=r["symbol"],
                    strategy=r["strategy"],
                    status=SignalStatus(r["status"]),
                    score=r["score"],
                    rank=r["rank"],
                    rank_score=r["rank_score"],
                    decision=DecisionKind(r["decision"]) if r["decision"] else None,
                    reason=r["decision_reason"],
                    detail=r["decision_detail"],
                    decided_at=r["decided_at"],
                    trade_id=r["trade_id"],
                    created_at=r["created_at"],
                )
                for r in rows
            ],
            reasons=dict(sorted(reasons.items())),
        )
