"""The broker-call budget's rules: sliding-window arithmetic, priority reserves, broker blocks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from cli.status import budget_lines
from trading.broker_budget import (
    UNKNOWN_RESET_BLOCK,
    WINDOW,
    BrokerLimitSeen,
    BudgetConfig,
    BudgetState,
    Priority,
    SpentCall,
    account_key,
    block_after_429,
    budget_view,
    decide,
    submit_priority,
)

NOW = datetime(2024, 3, 5, 15, 30, tzinfo=UTC)
CONFIG = BudgetConfig(calls_per_min=190, read_reserve=40, trade_reserve=10)


def _spent(count: int, priority: Priority = Priority.READ, age_s: float = 30) -> list[SpentCall]:
    return [SpentCall(at=NOW - timedelta(seconds=age_s), priority=priority)] * count


@pytest.mark.parametrize(
    ("used", "granted"),
    [
        (0, {Priority.READ, Priority.TRADE, Priority.PROTECT}),
        (149, {Priority.READ, Priority.TRADE, Priority.PROTECT}),  # the last read leaves 40
        (150, {Priority.TRADE, Priority.PROTECT}),
        (179, {Priority.TRADE, Priority.PROTECT}),
        (180, {Priority.PROTECT}),
        (189, {Priority.PROTECT}),  # protective orders may use the whole window
        (190, set()),
    ],
)
def test_each_priority_leaves_its_reserve_to_the_ones_above(
    used: int, granted: set[Priority]
) -> None:
    calls = _spent(used)
    allowed = {p for p in Priority if decide(calls, BudgetState(), p, 1, NOW, CONFIG).granted}
    assert allowed == granted


def test_a_snapshot_takes_its_three_slots_at_once() -> None:
    assert decide(_spent(147), BudgetState(), Priority.READ, 3, NOW, CONFIG).granted
    assert not decide(_spent(148), BudgetState(), Priority.READ, 3, NOW, CONFIG).granted


def test_calls_leave_the_window_after_60_seconds() -> None:
    old = _spent(190, age_s=60)  # exactly 60 s ago: outside the window
    assert decide(old, BudgetState(), Priority.READ, 1, NOW, CONFIG).granted
    recent = _spent(190, age_s=59.9)
    assert not decide(recent, BudgetState(), Priority.PROTECT, 1, NOW, CONFIG).granted


def test_a_refusal_says_when_enough_of_the_oldest_calls_have_left() -> None:
    # 150 reads: 10 from 50 s ago, 140 from 5 s ago. A read needs one to leave (149 + 1 = 150).
    calls = _spent(10, age_s=50) + _spent(140, age_s=5)
    verdict = decide(calls, BudgetState(), Priority.READ, 1, NOW, CONFIG)
    assert not verdict.granted
    assert verdict.retry_after == timedelta(seconds=10)
    assert "150 of 190" in verdict.reason and "40" in verdict.reason
    # A snapshot (3 slots) needs three to leave: still the first group, 10 s.
    assert decide(calls, BudgetState(), Priority.READ, 3, NOW, CONFIG).retry_after == timedelta(
        seconds=10
    )
    # With 30 more recent calls, a read needs 31 gone: the second group, 55 s.
    more = calls + _spent(30, age_s=5)
    assert decide(more, BudgetState(), Priority.READ, 1, NOW, CONFIG).retry_after == timedelta(
        seconds=55
    )


@given(
    gaps=st.lists(st.floats(min_value=0, max_value=3), min_size=1, max_size=400),
    priorities=st.lists(st.sampled_from(list(Priority)), min_size=400, max_size=400),
    limit=st.integers(min_value=3, max_value=40),
)
def test_no_60_second_interval_ever_holds_more_than_the_limit(
    gaps: list[float], priorities: list[Priority], limit: int
) -> None:
    config = BudgetConfig(calls_per_min=limit, read_reserve=0, trade_reserve=0)
    granted: list[SpentCall] = []
    at = NOW
    for gap, priority in zip(gaps, priorities, strict=False):
        at += timedelta(seconds=gap)
        if decide(granted, BudgetState(), priority, 1, at, config).granted:
            granted.append(SpentCall(at=at, priority=priority))
    times = [c.at for c in granted]
    for i, start in enumerate(times):
        inside = [t for t in times[i:] if t < start + WINDOW]
        assert len(inside) <= limit


def test_a_recorded_429_stops_every_priority_until_the_reset() -> None:
    until = NOW + timedelta(seconds=12)
    state = BudgetState(blocked_until=until, blocked_reason="submit_order was answered 429")
    for priority in Priority:
        verdict = decide([], state, priority, 1, NOW, CONFIG)
        assert not verdict.granted and verdict.retry_after == timedelta(seconds=12)
        assert "429" in verdict.reason
    assert decide([], state, Priority.READ, 1, until, CONFIG).granted


def test_the_brokers_count_at_zero_stops_calls_until_its_reset() -> None:
    spent = BrokerLimitSeen(
        limit=200, remaining=0, reset_at=NOW + timedelta(seconds=7), observed_at=NOW
    )
    verdict = decide([], BudgetState(broker=spent), Priority.PROTECT, 1, NOW, CONFIG)
    assert not verdict.granted and verdict.retry_after == timedelta(seconds=7)
    assert "X-RateLimit-Remaining" in verdict.reason
    left = spent.model_copy(update={"remaining": 1})
    assert decide([], BudgetState(broker=left), Priority.READ, 1, NOW, CONFIG).granted
    after_reset = NOW + timedelta(seconds=8)
    assert decide([], BudgetState(broker=spent), Priority.READ, 1, after_reset, CONFIG).granted


def test_a_429_without_a_reset_blocks_briefly() -> None:
    assert block_after_429(None, NOW) == NOW + UNKNOWN_RESET_BLOCK
    assert block_after_429(NOW + timedelta(seconds=40), NOW) == NOW + timedelta(seconds=40)
    assert block_after_429(NOW - timedelta(seconds=1), NOW) == NOW + UNKNOWN_RESET_BLOCK


def test_rate_limit_headers_are_read_case_insensitively() -> None:
    headers = {
        "x-ratelimit-limit": "200",
        "X-RateLimit-Remaining": "17",
        "X-RATELIMIT-RESET": "1709652660",
    }
    seen = BrokerLimitSeen.from_headers(headers, NOW)
    assert seen is not None
    assert (seen.limit, seen.remaining) == (200, 17)
    assert seen.reset_at == datetime.fromtimestamp(1709652660, UTC)
    assert BrokerLimitSeen.from_headers({"Content-Type": "application/json"}, NOW) is None
    odd = BrokerLimitSeen.from_headers({"X-RateLimit-Remaining": "many"}, NOW)
    assert odd is None


@pytest.mark.parametrize(
    ("client_order_id", "priority"),
    [
        ("aapl-20240305-153000-abc123.sl.0", Priority.PROTECT),
        ("aapl-20240305-153000-abc123.rs.2", Priority.PROTECT),
        ("aapl-20240305-153000-abc123.ex.1", Priority.PROTECT),
        ("aapl-20240305-153000-abc123.en.0", Priority.TRADE),
        ("aapl-20240305-153000-abc123.tp.0", Priority.TRADE),
        ("verify-abc-01", Priority.TRADE),
    ],
)
def test_submits_protect_for_stop_exit_and_rescue_legs(
    client_order_id: str, priority: Priority
) -> None:
    assert submit_priority(client_order_id) is priority


def test_the_account_key_is_a_digest_never_the_key() -> None:
    key = account_key("https://paper-api.alpaca.markets/", "PKSECRETKEYID")
    assert key == account_key("https://paper-api.alpaca.markets", "PKSECRETKEYID")
    assert len(key) == 16 and "PK" not in key.upper()
    assert key != account_key("https://api.alpaca.markets", "PKSECRETKEYID")
    assert key != account_key("https://paper-api.alpaca.markets", "PKOTHERKEY")


def test_the_view_counts_the_window_by_priority() -> None:
    calls = [
        *_spent(3, Priority.PROTECT),
        SpentCall(at=NOW - timedelta(seconds=1), priority=Priority.READ, slots=3),
        *_spent(5, Priority.TRADE, age_s=90),  # gone
    ]
    seen = BrokerLimitSeen(
        limit=200, remaining=0, reset_at=NOW + timedelta(seconds=9), observed_at=NOW
    )
    view = budget_view(calls, BudgetState(broker=seen), NOW, CONFIG, shared=True)
    assert (view.used_by_priority.protect, view.used_by_priority.trade) == (3, 0)
    assert view.used_by_priority.read == 3
    assert (view.used_last_60s, view.remaining, view.limit_per_min) == (6, 184, 190)
    assert view.broker_remaining == 0 and view.blocked_until == NOW + timedelta(seconds=9)


def test_reserves_must_fit_the_limit() -> None:
    with pytest.raises(ValidationError, match="trade reserve"):
        BudgetConfig(calls_per_min=190, read_reserve=5, trade_reserve=10)
    with pytest.raises(ValidationError, match="read reserve"):
        BudgetConfig(calls_per_min=190, read_reserve=189, trade_reserve=10)


def test_status_prints_the_budget_its_brokers_count_and_a_block() -> None:
    seen = BrokerLimitSeen(
        limit=200, remaining=0, reset_at=NOW + timedelta(seconds=9), observed_at=NOW
    )
    view = budget_view(
        _spent(12, Priority.PROTECT), BudgetState(broker=seen), NOW, CONFIG, shared=True
    )
    lines = budget_lines(view)
    assert lines[0].startswith("broker-call budget (shared by every process): 12 of 190 used")
    assert (
        "(protect 12, trade 0, read 0), 178 left; reads stop at 40 left, trades at 10" in lines[0]
    )
    assert lines[1] == "  broker's own count: 0 of 200 left until 15:30:09 UTC"
    assert lines[2].startswith("  BLOCKED until 15:30:09 UTC: the broker's X-RateLimit-Remaining")
