"""The rankers' shared arithmetic: normalised parts, their weighted score, the order (pure)."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from trading.ranking import (
    best_first,
    clamp01,
    log_scale,
    quantize_part,
    weighted_score,
)

D = Decimal
WEIGHTS = {"quality": D("0.60"), "size": D("0.40")}
PARTS: dict[str, dict[str, Decimal]] = {
    "best": {"quality": D(1), "size": D(1)},
    "quality": {"quality": D("0.8"), "size": D(0)},
    "size": {"quality": D(0), "size": D("1.2")},  # the same score as "quality"
    "worst": {"quality": D(0), "size": D(0)},
}


def test_parts_are_clamped_onto_zero_to_one_and_kept_to_four_decimals() -> None:
    assert [clamp01(D(v)) for v in ("-0.5", "0.25", "3")] == [D(0), D("0.25"), D(1)]
    assert quantize_part(D("0.12345")) == D("0.1234")  # half to even
    assert quantize_part(D("0.12355")) == D("0.1236")


def test_a_log_scale_runs_from_its_floor_over_its_span() -> None:
    assert log_scale(D(0), D(1), D(3)) == 0
    assert log_scale(D(10), D(1), D(3)) == 0
    assert log_scale(D(100), D(1), D(3)) == D(1) / D(3)
    assert log_scale(D(10**6), D(1), D(3)) == 1


def test_the_score_is_the_weighted_sum_of_the_parts() -> None:
    assert weighted_score(WEIGHTS, PARTS["best"]) == 1
    assert weighted_score(WEIGHTS, PARTS["quality"]) == D("0.480")


def test_ties_go_to_the_parts_in_the_weights_order_then_the_tie_break() -> None:
    placed = best_first(PARTS, PARTS.__getitem__, WEIGHTS, lambda name: (name,))
    assert [(p.rank, p.item) for p in placed] == [
        (1, "best"),
        (2, "quality"),
        (3, "size"),
        (4, "worst"),
    ]
    assert placed[1].rank_score == placed[2].rank_score
    assert placed[1].parts == PARTS["quality"]


@given(st.permutations(["best", "quality", "size", "worst", "twin"]))
def test_the_order_does_not_depend_on_the_input_s(names: list[str]) -> None:
    parts = {**PARTS, "twin": PARTS["worst"]}
    placed = best_first(names, parts.__getitem__, WEIGHTS, lambda name: (name,))
    assert [p.item for p in placed] == ["best", "quality", "size", "twin", "worst"]
