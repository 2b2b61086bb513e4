"""The ranker: one weighted rule over normalised parts, a deterministic order, parts shown."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from trading.ranker import NEUTRAL, WEIGHTS, RankInput, rank, rank_parts, reward_risk

D = Decimal


def item(key: str = "k", **fields: Any) -> RankInput:
    base: dict[str, Any] = {
        "signal_key": key,
        "symbol": key.upper(),
        "strategy": "orb",
        "score": D("0.5"),
        "confidence": 3,
        "entry": D(100),
        "stop": D(98),
        "target": D(104),
        "liquidity": D(10_000_000),
    }
    base.update(fields)
    return RankInput(**base)


def keys(items: list[RankInput]) -> list[str]:
    return [r.item.signal_key for r in rank(items)]


def test_the_weights_sum_to_one() -> None:
    assert sum(WEIGHTS.values()) == 1


def test_parts_are_normalised_and_shown() -> None:
    ranked = rank([item(score=D("0.6"), confidence=5, liquidity=D(100_000_000))])[0]
    assert ranked.rank == 1
    assert ranked.parts == {
        "score": D("0.8"),
        "confidence": D(1),
        "reward_risk": D("0.6667"),  # 2R of a full 3R
        "liquidity": D("0.75"),  # log10(1e8) = 8 -> (8 - 5) / 4
    }
    assert ranked.rank_score == sum(WEIGHTS[n] * p for n, p in ranked.parts.items())


def test_missing_parts_are_neutral() -> None:
    bare = RankInput(signal_key="m", symbol="M", strategy="momentum", score=D(0))
    assert rank_parts(bare) == {
        "score": NEUTRAL,
        "confidence": NEUTRAL,
        "reward_risk": NEUTRAL,
        "liquidity": NEUTRAL,
    }
    assert rank([bare])[0].rank_score == NEUTRAL
    assert reward_risk(item(stop=D(101))) is None  # stop not below the entry: unknown
    assert rank_parts(item(stop=D(101)))["reward_risk"] == NEUTRAL


def test_parts_are_clamped() -> None:
    parts = rank_parts(item(score=D(3), target=D(200), liquidity=D(10) ** 12))
    assert parts["score"] == parts["reward_risk"] == parts["liquidity"] == 1
    low = rank_parts(item(score=D(-3), target=D(90), liquidity=D(0)))
    assert low["score"] == low["reward_risk"] == low["liquidity"] == 0


def test_a_higher_score_wins() -> None:
    assert keys([item("a", score=D("0.4")), item("b", score=D("0.9"))]) == ["b", "a"]


def test_equal_scores_go_to_the_higher_confidence() -> None:
    assert keys([item("a", confidence=2), item("b", confidence=4)]) == ["b", "a"]


def test_then_to_the_better_reward_risk() -> None:
    assert keys([item("a", target=D(102)), item("b", target=D(106))]) == ["b", "a"]


def test_then_to_the_more_liquid() -> None:
    assert keys([item("a", liquidity=D(10**6)), item("b", liquidity=D(10**8))]) == ["b", "a"]


def test_a_rank_score_tie_goes_to_the_score_part_then_the_signal_key() -> None:
    # score 0.8 vs 0.6 (+0.05) against confidence 2 vs 3 (-0.05): equal rank scores
    a = item("a", score=D("0.6"), confidence=3)
    b = item("b", score=D("0.8"), confidence=2)
    ranked = rank([a, b])
    assert ranked[0].rank_score == ranked[1].rank_score
    assert [r.item.signal_key for r in ranked] == ["b", "a"]
    assert keys([item("z"), item("y"), item("x")]) == ["x", "y", "z"]


def test_strategies_rank_together() -> None:
    momentum = RankInput(signal_key="m", symbol="M", strategy="momentum", score=D("0.9"))
    orb = item("o", score=D("0.2"), confidence=1, target=D(101))
    ranked = rank([orb, momentum])
    assert [r.item.strategy for r in ranked] == ["momentum", "orb"]
    assert [r.rank for r in ranked] == [1, 2]


def test_nothing_to_rank() -> None:
    assert rank([]) == []


rank_inputs = st.builds(
    RankInput,
    signal_key=st.sampled_from(["a", "b", "c", "d"]),
    symbol=st.sampled_from(["AAPL", "MSFT"]),
    strategy=st.sampled_from(["orb", "momentum"]),
    score=st.decimals(min_value=-1, max_value=1, places=2),
    confidence=st.one_of(st.none(), st.integers(min_value=1, max_value=5)),
    entry=st.one_of(st.none(), st.decimals(min_value=10, max_value=12, places=1)),
    stop=st.one_of(st.none(), st.decimals(min_value=9, max_value=11, places=1)),
    target=st.one_of(st.none(), st.decimals(min_value=10, max_value=20, places=1)),
    liquidity=st.one_of(st.none(), st.decimals(min_value=0, max_value=10**10, places=0)),
)


@given(st.lists(rank_inputs, max_size=8), st.randoms())
def test_the_order_does_not_depend_on_the_input_order(items: list[RankInput], shuffle: Any) -> None:
    ranked = rank(items)
    shuffled = list(items)
    shuffle.shuffle(shuffled)
    assert rank(shuffled) == ranked
    assert [r.rank for r in ranked] == list(range(1, len(items) + 1))
    scores = [r.rank_score for r in ranked]
    assert scores == sorted(scores, reverse=True)
    assert all(0 <= s <= 1 for s in scores)
