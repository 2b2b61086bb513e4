"""ScoreDrainWorkflow: score PENDING signals in batches until none are left or `limit` is hit.

One drain at a time: manual triggers start it under the fixed id `score-drain` (a second
trigger joins the running one) and its schedule uses the SKIP overlap policy. Should two
drains run anyway (different ids), the claim's lease (FOR UPDATE SKIP LOCKED) keeps them on
different signals and the ledger's first-outcome-wins writes keep each signal's one outcome.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.ledger import LedgerActivities
    from activities.scoring import ScoringActivities
    from trading.ledger_records import ExpiredSignals, SignalExpiry, SignalFunnelQuery
    from trading.scoring import (
        DrainInput,
        DrainProgress,
        DrainResult,
        ScoreBatch,
        UnknownScorer,
        next_batch_size,
    )
    from workflows.calls import call, ledger
    from workflows.policies import LEDGER_READ, ActivityPolicy

# A batch is one claim, up to 1,000 scorer calls and as many single-row writes; it heartbeats
# per signal. The deadline stays well inside the default 120 s lease so a batch's signals are
# never handed to another drain while it still scores them.
SCORE_BATCH = ActivityPolicy(
    start_to_close=timedelta(seconds=60),
    heartbeat=timedelta(seconds=20),
    retry=RetryPolicy(
        initial_interval=timedelta(milliseconds=500),
        backoff_coefficient=2.0,
        maximum_interval=timedelta(seconds=10),
        maximum_attempts=5,
        non_retryable_error_types=[UnknownScorer.__name__],
    ),
)


@workflow.defn
class ScoreDrainWorkflow:
    """Expire stale signals, score the rest batch by batch, expire again, report the funnel."""

    @workflow.init
    def __init__(self, request: DrainInput) -> None:
        self._request = request
        self._progress = DrainProgress()

    @workflow.query
    def progress(self) -> DrainProgress:
        """Counts so far and the current phase."""
        return self._progress

    @workflow.run
    async def run(self, request: DrainInput) -> DrainResult:
        expiry = SignalExpiry(
            max_attempts=request.max_attempts, max_age_seconds=request.max_age_seconds
        )
        self._set_phase("expiring stale signals")
        expired = len((await self._expire(expiry)).signal_keys)
        self._progress = self._progress.model_copy(update={"expired": expired})

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
            )
            self._progress = self._progress.plus(batch)
            if batch.claimed < size:
                break  # nothing claimable is left (the rest is leased, capped or done)

        # Signals that reached the attempts cap in this drain end now, not next drain.
        self._set_phase("expiring signals past the cap")
        expired += len((await self._expire(expiry)).signal_keys)
        self._progress = self._progress.model_copy(update={"expired": expired})

        self._set_phase("reading the funnel")
        funnel = await call(LedgerActivities.signal_funnel, SignalFunnelQuery(), LEDGER_READ)
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
        self._set_phase("done")
        workflow.set_current_details(
            self._details() + f"\n\n**{result.remaining_pending}** signals still PENDING"
        )
        return result

    async def _expire(self, expiry: SignalExpiry) -> ExpiredSignals:
        return await ledger(LedgerActivities.expire_signals, expiry)

    def _set_phase(self, phase: str) -> None:
        self._progress = self._progress.model_copy(update={"phase": phase})
        workflow.set_current_details(self._details())

    def _details(self) -> str:
        p = self._progress
        request = self._request
        codes = ", ".join(f"{code} {n}" for code, n in sorted(p.error_codes.items())) or "none"
        return "\n".join(
            [
                f"## Score drain: {p.phase}",
                f"scorer `{request.scorer}`, limit {request.limit}, batch {request.batch}, "
                f"max attempts {request.max_attempts}, max age {request.max_age_seconds} s",
                "",
                "| batches | claimed | scored | error | expired | retry later |",
                "|---|---|---|---|---|---|",
                f"| {p.batches} | {p.claimed} | {p.scored} | {p.error} | {p.expired} "
                f"| {p.retry_later} |",
                "",
                f"errors by reason: {codes}",
            ]
        )
