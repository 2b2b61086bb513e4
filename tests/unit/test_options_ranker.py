"""The options ranker: one weighted rule over normalised parts, explained, order-independent."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from trading.options.chain import OptionChain, OptionContractQuote, OptionRight, format_occ_symbol
from trading.options.ranker import (
    WEIGHTS,
    OptionRankConfig,
    SpreadCandidate,
    rank_candidates,
    rank_parts,
    spread_candidate,
    vertical_candidates,
)

D = Decimal
TODAY = date(2026, 12, 1)
MIDDLE = date(2027, 1, 7)  # 37 days; the window's middle is 37.5
CONFIG = OptionRankConfig()


def candidate(key: str = "k", **fields: Any) -> SpreadCandidate:
    base: dict[str, Any] = {
        "key": key,
        "underlying": "XYZ",
        "right": OptionRight.PUT,
        "expiry": MIDDLE,
        "short_strike": D(90),
        "long_strike": D(85),
        "short_delta": D("-0.16"),
        "credit": D("0.80"),
        "width": D(5),
        "worst_relative_spread": D("0.10"),
        "min_open_interest": 1000,
    }
    base.update(fields)
    return SpreadCandidate(**base)


def keys(items: list[SpreadCandidate]) -> list[str]:
    return [r.candidate.key for r in rank_candidates(items, TODAY)]


def test_the_weights_sum_to_one() -> None:
    assert sum(WEIGHTS.values()) == 1


def test_every_part_is_explained_and_normalised() -> None:
    ranked = rank_candidates([candidate()], TODAY)[0]
    assert ranked.rank == 1
    assert ranked.parts == {
        "spread": D("0.6"),  # 1 - 0.10 / 0.25
        "open_interest": D("0.6667"),  # (log10(1000) - 1) / 3
        "delta": D(1),  # on the target
        "dte": D("0.9667"),  # 37 days: 1 - 0.5 / 15
        "premium_risk": D("0.3810"),  # 0.80 / 4.20 = 0.1905, of a full 0.5
    }
    assert ranked.rank_score == sum(WEIGHTS[n] * p for n, p in ranked.parts.items())


def test_part_edges() -> None:
    parts = rank_parts(
        candidate(
            worst_relative_spread=None,
            min_open_interest=0,
            short_delta=None,
            expiry=TODAY,
            credit=D(0),
        ),
        TODAY,
        CONFIG,
    )
    assert set(parts.values()) == {D(0)}
    parts = rank_parts(
        candidate(
            worst_relative_spread=D(0),
            min_open_interest=10_000,
            credit=D("5"),
            expiry=date(2026, 12, 31),  # 30 days: the window's edge
            short_delta=D("0.06"),  # a whole band from 0.16
        ),
        TODAY,
        CONFIG,
    )
    assert parts == {
        "spread": D(1),
        "open_interest": D(1),
        "delta": D(0),
        "dte": D("0.5"),
        "premium_risk": D(1),
    }


def test_better_liquidity_delta_time_and_premium_each_rank_higher() -> None:
    base = candidate("base")
    better = [
        candidate("tight", worst_relative_spread=D("0.05")),
        candidate("deep", min_open_interest=5000),
        candidate("rich", credit=D("1.00")),
    ]
    worse = [
        candidate("wide", worst_relative_spread=D("0.20")),
        candidate("thin", min_open_interest=50),
        candidate("off_delta", short_delta=D("-0.25")),
        candidate("far", expiry=date(2027, 2, 19)),
        candidate("poor", credit=D("0.30")),
    ]
    for item in better:
        assert keys([base, item]) == [item.key, "base"]
    for item in worse:
        assert keys([base, item]) == ["base", item.key]


def test_ties_go_to_the_parts_in_weight_order_then_the_key() -> None:
    assert keys([candidate("b"), candidate("a")]) == ["a", "b"]


def _quote(right: OptionRight, strike: int, mid: str, delta: str, oi: int) -> OptionContractQuote:
    spread = D("0.05")
    return OptionContractQuote(
        symbol=format_occ_symbol("XYZ", MIDDLE, right, D(strike)),
        underlying="XYZ",
        expiry=MIDDLE,
        right=right,
        strike=D(strike),
        bid=D(mid) - spread,
        ask=D(mid) + spread,
        mid=D(mid),
        delta=D(delta),
        open_interest=oi,
    )


def test_verticals_are_built_from_the_chain_and_ranked() -> None:
    chain = OptionChain(
        underlying="XYZ",
        underlying_price=D(100),
        as_of=datetime(2026, 12, 1, 15, tzinfo=UTC),
        contracts=[
            _quote(OptionRight.PUT, 85, "0.75", "-0.10", 800),
            _quote(OptionRight.PUT, 90, "1.55", "-0.17", 900),
            _quote(OptionRight.PUT, 95, "2.70", "-0.30", 700),
            _quote(OptionRight.CALL, 110, "1.45", "0.15", 900),
            _quote(OptionRight.CALL, 115, "0.65", "0.08", 600),
        ],
    )
    built = vertical_candidates(chain, D(5))
    assert {(c.right, c.short_strike, c.long_strike) for c in built} == {
        (OptionRight.PUT, D(90), D(85)),
        (OptionRight.PUT, D(95), D(90)),
        (OptionRight.CALL, D(110), D(115)),
    }
    put_90 = next(c for c in built if c.short_strike == D(90))
    assert put_90.credit == D("0.80")
    assert put_90.min_open_interest == 800
    assert put_90.worst_relative_spread == D("0.10") / D("0.75")
    ranked = rank_candidates(built, TODAY)
    assert [r.rank for r in ranked] == [1, 2, 3]
    assert ranked[0].candidate.short_delta is not None
    assert abs(abs(ranked[-1].candidate.short_delta or D(0)) - D("0.16")) == D("0.14")


def test_a_debit_or_crossed_pair_is_not_a_credit_spread() -> None:
    near = _quote(OptionRight.PUT, 90, "1.55", "-0.17", 900)
    far = _quote(OptionRight.PUT, 85, "0.75", "-0.10", 800)
    assert spread_candidate(far, near) is None  # buying the nearer put is a debit spread
    call = _quote(OptionRight.CALL, 110, "1.45", "0.15", 900)
    assert spread_candidate(near, call) is None


candidates = st.builds(
    candidate,
    key=st.text(alphabet="abcdef", min_size=1, max_size=4),
    worst_relative_spread=st.none() | st.decimals(min_value=0, max_value=1, places=3),
    min_open_interest=st.integers(min_value=0, max_value=50_000),
    short_delta=st.none() | st.decimals(min_value=-1, max_value=1, places=2),
    expiry=st.dates(min_value=date(2026, 11, 1), max_value=date(2027, 6, 1)),
    credit=st.decimals(min_value=-1, max_value=5, places=2),
)


@given(st.lists(candidates, max_size=8), st.randoms(use_true_random=False))
def test_the_order_does_not_depend_on_the_input_order(
    items: list[SpreadCandidate], shuffler: Any
) -> None:
    shuffled = list(items)
    shuffler.shuffle(shuffled)
    first = rank_candidates(items, TODAY)
    second = rank_candidates(shuffled, TODAY)
    assert [r.candidate for r in first] == [r.candidate for r in second]
    assert [r.rank for r in first] == list(range(1, len(items) + 1))
    for ranked in first:
        assert all(D(0) <= part <= D(1) for part in ranked.parts.values())
        assert D(0) <= ranked.rank_score <= D(1)
    scores = [r.rank_score for r in first]
    assert scores == sorted(scores, reverse=True)
