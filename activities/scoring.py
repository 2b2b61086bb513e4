"""ScoringActivities: claim a batch of PENDING signals, score them, record SCORED or ERROR.

One activity call per batch, not per signal. The claim is a lease taken with FOR UPDATE
SKIP LOCKED, so concurrent drains never hold the same signal; the ledger's outcome writes
are first-wins, so even a lapsed lease cannot record a second outcome.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import asyncpg
from temporalio import activity
from temporalio.exceptions import ApplicationError

from ledger.signals import Signals
from ops import metrics
from trading.ledger_records import SignalClaim, SignalFailed, SignalRecord, SignalScored
from trading.scoring import (
    ScoreBatch,
    ScoreBatchResult,
    Scorer,
    ScoreResult,
    ScorerRegistry,
    ScoringError,
    SignalToScore,
    UnknownScorer,
    builtin_scorers,
)

_TOO_OLD = "too_old"


class _RetryLater:
    """The scorer failed in a way a later attempt may not: leave the signal PENDING."""


_RETRY_LATER = _RetryLater()
Outcome = ScoreResult | ScoringError | _RetryLater


def _score_all(
    scorer: Scorer, signals: list[SignalRecord], max_age: timedelta, now: datetime
) -> list[Outcome]:
    """Each signal's outcome: a result, a ScoringError, or retry later."""
    outcomes: list[Outcome] = []
    for signal in signals:
        if now - signal.created_at > max_age:
            outcomes.append(
                ScoringError(
                    _TOO_OLD, f"created {signal.created_at.isoformat()}, max age {max_age}"
                )
            )
            continue
        try:
            to_score = SignalToScore.model_validate(signal, from_attributes=True)
            outcomes.append(scorer.score(to_score))
        except ScoringError as exc:
            outcomes.append(exc)
        except Exception as exc:  # a scorer bug or outage: let the attempts cap decide
            activity.logger.warning(
                "signal %s: scorer %s failed (%s: %s); left PENDING for a later attempt",
                signal.signal_key,
                scorer.name,
                type(exc).__name__,
                exc,
            )
            outcomes.append(_RETRY_LATER)
    return outcomes


class ScoringActivities:
    """Scores batches of signals with a scorer picked by name."""

    def __init__(self, pool: asyncpg.Pool, scorers: ScorerRegistry | None = None) -> None:
        self._signals = Signals(pool)
        self._scorers = scorers if scorers is not None else builtin_scorers()

    @activity.defn
    async def score_signals(self, batch: ScoreBatch) -> ScoreBatchResult:
        """Claim up to batch.limit signals, score each, mark SCORED or ERROR; return counts."""
        try:
            scorer = self._scorers.get(batch.scorer)
        except UnknownScorer as exc:
            # Before the claim: a misnamed scorer must not use up anyone's attempts.
            raise ApplicationError(
                str(exc), type=UnknownScorer.__name__, non_retryable=True
            ) from exc
        claimed = await self._signals.claim(
            SignalClaim(
                limit=batch.limit,
                lease_seconds=batch.lease_seconds,
                max_attempts=batch.max_attempts,
            )
        )
        if not claimed:
            return ScoreBatchResult()
        # Scorers are synchronous; a thread keeps a slow one from stalling the worker's loop.
        outcomes = await asyncio.to_thread(
            _score_all,
            scorer,
            claimed,
            timedelta(seconds=batch.max_age_seconds),
            datetime.now(UTC),
        )
        scored = error = already_final = retry_later = 0
        error_codes: dict[str, int] = {}
        for signal, outcome in zip(claimed, outcomes, strict=True):
            activity.heartbeat(signal.signal_key)
            if isinstance(outcome, ScoreResult):
                written = await self._signals.mark_scored(
                    SignalScored(
                        signal_key=signal.signal_key,
                        score=outcome.score,
                        confidence=outcome.confidence,
                    )
                )
                scored += written.applied
            elif isinstance(outcome, ScoringError):
                written = await self._signals.mark_error(
                    SignalFailed(signal_key=signal.signal_key, reason=outcome.reason)
                )
                if written.applied:
                    error += 1
                    error_codes[outcome.code] = error_codes.get(outcome.code, 0) + 1
            else:
                retry_later += 1
                continue
            already_final += not written.applied
        metrics.signals("scored", scored)
        metrics.signals("error", error)
        activity.logger.info(
            "scorer %s: claimed %d, scored %d, error %d, already final %d, retry later %d",
            scorer.name,
            len(claimed),
            scored,
            error,
            already_final,
            retry_later,
        )
        return ScoreBatchResult(
            claimed=len(claimed),
            scored=scored,
            error=error,
            already_final=already_final,
            retry_later=retry_later,
            error_codes=error_codes,
        )
