"""Signals repository on real PostgreSQL: insert once, claim once, end SCORED or ERROR."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import asyncpg
import pytest

from ledger.signals import Signals
from trading.ledger_records import (
    SignalClaim,
    SignalCreate,
    SignalExpiry,
    SignalFailed,
    SignalScored,
    SignalStatus,
)

pytestmark = pytest.mark.integration


def _signal(key: str, **overrides: object) -> SignalCreate:
    fields: dict[str, object] = {
        "signal_key": key,
        "symbol": "AAPL",
        "strategy": "breakout",
        "features": {"rsi": 61.5, "gap": True},
    }
    return SignalCreate.model_validate(fields | overrides)


async def test_insert_round_trips_and_a_repeat_leaves_one_row(fresh_pool: asyncpg.Pool) -> None:
    signals = Signals(fresh_pool)
    first = await signals.insert(_signal("s-1"))
    again = await signals.insert(_signal("s-1", symbol="MSFT"))

    assert first.applied and not again.applied and again.signal == first.signal
    signal = first.signal
    assert (signal.signal_key, signal.symbol, signal.status, signal.attempts) == (
        "s-1",
        "AAPL",
        SignalStatus.PENDING,
        0,
    )
    assert signal.features == {"rsi": 61.5, "gap": True}
    assert await fresh_pool.fetchval("SELECT count(*) FROM signals") == 1


async def test_claim_takes_oldest_pending_and_counts_attempts(fresh_pool: asyncpg.Pool) -> None:
    signals = Signals(fresh_pool)
    now = datetime.now(UTC)
    for i in range(3):
        await signals.insert(_signal(f"s-{i}", created_at=now - timedelta(minutes=10 - i)))

    claimed = await signals.claim(SignalClaim(limit=2))
    assert [s.signal_key for s in claimed] == ["s-0", "s-1"]
    assert all(s.attempts == 1 and s.claimed_until is not None for s in claimed)
    # Leased signals are not handed out again; the next claim gets only the rest.
    assert [s.signal_key for s in await signals.claim(SignalClaim(limit=5))] == ["s-2"]
    assert await signals.claim(SignalClaim(limit=5)) == []


async def test_concurrent_claims_never_return_the_same_signal(fresh_database_url: str) -> None:
    pools = [
        await asyncpg.create_pool(fresh_database_url, min_size=4, max_size=4) for _ in range(2)
    ]
    try:
        repos = [Signals(p) for p in pools]
        for i in range(60):
            await repos[0].insert(_signal(f"c-{i:03}"))
        # Eight drains at once, four on each pool, each taking small batches until empty.
        claims = [repo.claim(SignalClaim(limit=5)) for repo in repos for _ in range(4)]
        batches = []
        while True:
            round_ = await asyncio.gather(*claims)
            batches.extend(round_)
            if not any(round_):
                break
            claims = [repo.claim(SignalClaim(limit=5)) for repo in repos for _ in range(4)]
        keys = [s.signal_key for batch in batches for s in batch]
        assert len(keys) == len(set(keys)) == 60
    finally:
        for p in pools:
            await p.close()


async def test_a_lapsed_claim_is_claimed_again_up_to_the_attempts_cap(
    fresh_pool: asyncpg.Pool,
) -> None:
    signals = Signals(fresh_pool)
    await signals.insert(_signal("s-lapse"))
    for attempt in (1, 2):
        (claimed,) = await signals.claim(SignalClaim(limit=1, max_attempts=2))
        assert claimed.attempts == attempt
        # The drain died: its lease runs out.
        await fresh_pool.execute(
            "UPDATE signals SET claimed_until = now() - interval '1 second' WHERE signal_key = $1",
            "s-lapse",
        )
    assert await signals.claim(SignalClaim(limit=1, max_attempts=2)) == []

    assert await signals.expire(SignalExpiry(max_attempts=2)) == ["s-lapse"]
    ended = await signals.get("s-lapse")
    assert ended is not None and ended.status is SignalStatus.ERROR
    assert ended.last_error == "gave up after 2 scoring attempts"


async def test_the_first_outcome_is_final(fresh_pool: asyncpg.Pool) -> None:
    signals = Signals(fresh_pool)
    await signals.insert(_signal("s-a"))
    await signals.insert(_signal("s-b"))

    scored = await signals.mark_scored(
        SignalScored(signal_key="s-a", score=Decimal("0.8125"), confidence=Decimal("0.9"))
    )
    late_error = await signals.mark_error(SignalFailed(signal_key="s-a", reason="timeout"))
    failed = await signals.mark_error(SignalFailed(signal_key="s-b", reason="no market data"))
    late_score = await signals.mark_scored(
        SignalScored(signal_key="s-b", score=Decimal(1), confidence=Decimal(1))
    )

    assert scored.applied and not late_error.applied and failed.applied and not late_score.applied
    assert late_error.signal.status is SignalStatus.SCORED
    assert (late_error.signal.score, late_error.signal.confidence) == (
        Decimal("0.8125"),
        Decimal("0.9"),
    )
    assert late_error.signal.scored_at is not None
    assert late_score.signal.status is SignalStatus.ERROR
    assert late_score.signal.last_error == "no market data"


async def test_expiry_ends_old_unclaimed_pending_signals_in_error(
    fresh_pool: asyncpg.Pool,
) -> None:
    signals = Signals(fresh_pool)
    old = datetime.now(UTC) - timedelta(hours=2)
    await signals.insert(_signal("s-old", created_at=old))
    await signals.insert(_signal("s-old-claimed", created_at=old - timedelta(seconds=1)))
    await signals.insert(_signal("s-new"))
    await signals.claim(SignalClaim(limit=1))  # takes s-old-claimed, the oldest

    expired = await signals.expire(SignalExpiry(max_age_seconds=3600))

    assert expired == ["s-old"]
    ended = await signals.get("s-old")
    assert ended is not None and ended.status is SignalStatus.ERROR
    assert ended.last_error == "still pending after 3600 s"
    for key in ("s-new", "s-old-claimed"):
        kept = await signals.get(key)
        assert kept is not None and kept.status is SignalStatus.PENDING


async def test_funnel_counts_recent_and_all_time(fresh_pool: asyncpg.Pool) -> None:
    signals = Signals(fresh_pool)
    old = datetime.now(UTC) - timedelta(days=3)
    await signals.insert(_signal("f-old-scored", created_at=old))
    await signals.insert(_signal("f-scored"))
    await signals.insert(_signal("f-error"))
    await signals.insert(_signal("f-pending"))
    for key in ("f-old-scored", "f-scored"):
        await signals.mark_scored(SignalScored(signal_key=key, score=Decimal(1), confidence=0))
    await signals.mark_error(SignalFailed(signal_key="f-error", reason="bad"))

    funnel = await signals.funnel(window_hours=24)

    assert funnel.window_hours == 24
    assert funnel.recent.model_dump() == {"created": 3, "scored": 1, "error": 1, "pending": 1}
    assert funnel.all_time.model_dump() == {"created": 4, "scored": 2, "error": 1, "pending": 1}


async def test_pending_counts_only_pending_and_ages_the_oldest(fresh_pool: asyncpg.Pool) -> None:
    signals = Signals(fresh_pool)
    assert await signals.pending() == (0, None)
    old = datetime.now(UTC) - timedelta(minutes=10)
    await signals.insert(_signal("p-old", created_at=old))
    await signals.insert(_signal("p-new"))
    await signals.insert(_signal("p-scored"))
    await signals.mark_scored(
        SignalScored(signal_key="p-scored", score=Decimal("0.5"), confidence=Decimal("0.5"))
    )
    count, oldest = await signals.pending()
    funnel = await signals.funnel(1)
    assert count == 2 == funnel.all_time.pending
    assert oldest is not None and 590 <= oldest <= 700
