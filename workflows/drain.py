"""ScoreDrainWorkflow: score PENDING signals in batches until none are left or `limit` is hit.

Its interface is contracts/drain.py. One drain at a time: manual triggers start it under the
fixed id `score-drain` (a second trigger joins the running one) and its schedule uses the SKIP
overlap policy. Should two drains run anyway (different ids), the claim's lease (FOR UPDATE SKIP
LOCKED) keeps them on different signals and the ledger's first-outcome-wins writes keep each
signal's one outcome.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.ledger import LedgerActivities
    from activities.scoring import ScoringActivities
    from contracts import drain
    from trading.ledger_records import ExpiredSignals, SignalExpiry, SignalFunnelQuery
    from trading.models import evolve
    from trading.scoring import (
        DrainInput,
        DrainProgress,
        DrainResult,
        ScoreBatch,
        next_batch_size,
    )
    from workflows.calls import call, ledger
    from workflows.details import Details
    from workflows.policies import SCORE_BATCH
    from workflows.run_base import RunWorkflow


@workflow.defn(name=drain.WORKFLOW.name)
class ScoreDrainWorkflow(RunWorkflow[DrainProgress]):
    """Expire stale signals, score the rest batch by batch, expire again, report the funnel."""

    @workflow.init
    def __init__(self, request: DrainInput) -> None:
        self._request = request
        self._progress = DrainProgress()

    @workflow.run
    async def run(self, request: DrainInput) -> DrainResult:
        expiry = SignalExpiry(
            max_attempts=request.max_attempts, max_age_seconds=request.max_age_seconds
        )
        self._set_phase("expiring stale signals")
        expired = len((await self._expire(expiry)).signal_keys)
        self._update(expired=expired)

        while (size := next_batch_size(request, self._progress.claimed)) > 0:
            self._set_phase(f"scoring batch {self._progress.batches + 1}")
            batch = await call(
                ScoringActivities.score_signals,
                ScoreBatch(
                    limit=size,
                    scorer=request.scorer,
                    max_attempts=request.max_attempts,
                    lease_seconds=request.lease_seconds,
                    max_age_seconds=request.max_age_seconds,
                ),
                SCORE_BATCH,
                f"score up to {size} pending signals with {request.scorer}",
            )
            self._progress = self._progress.plus(batch)
            if batch.claimed < size:
                break  # nothing claimable is left (the rest is leased, capped or done)

        # Signals that reached the attempts cap in this drain end now, not next drain.
        self._set_phase("expiring signals past the cap")
        expired += len((await self._expire(expiry)).signal_keys)
        self._update(expired=expired)

        self._set_phase("reading the funnel")
        funnel = await ledger(
            LedgerActivities.signal_funnel, SignalFunnelQuery(), "ledger: the signal funnel"
        )
        progress = self._progress
        result = DrainResult(
            claimed=progress.claimed,
            scored=progress.scored,
            error=progress.error,
            expired=expired,
            remaining_pending=funnel.all_time.pending,
            batches=progress.batches,
            already_final=progress.already_final,
            retry_later=progress.retry_later,
            error_codes=progress.error_codes,
            funnel=funnel,
        )
        self._progress = evolve(self._progress, phase="done")
        self._details().line("").line(
            f"**{result.remaining_pending}** signals still PENDING"
        ).publish()
        return result

    async def _expire(self, expiry: SignalExpiry) -> ExpiredSignals:
        return await ledger(
            LedgerActivities.expire_signals,
            expiry,
            f"ledger: end PENDING signals past {expiry.max_attempts} attempts or "
            f"{expiry.max_age_seconds} s",
        )

    def _set_phase(self, phase: str) -> None:
        self._update(phase=phase)

    def _publish(self) -> None:
        self._details().publish()

    def _details(self) -> Details:
        p = self._progress
        request = self._request
        codes = ", ".join(f"{code} {n}" for code, n in sorted(p.error_codes.items())) or "none"
        return (
            Details(f"Score drain: {p.phase}")
            .line(
                f"scorer `{request.scorer}`, limit {request.limit}, batch {request.batch}, "
                f"max attempts {request.max_attempts}, max age {request.max_age_seconds} s"
            )
            .table(
                ("batches", "claimed", "scored", "error", "expired", "retry later"),
                [(p.batches, p.claimed, p.scored, p.error, p.expired, p.retry_later)],
            )
            .line("")
            .line(f"errors by reason: {codes}")
        )
