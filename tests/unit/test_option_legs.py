"""legs_verdict: a close goes out only for legs held exactly as the trade opened them."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from trading.broker_models import OrderSide
from trading.options.legs import LegsHeld, LegsVerdict, expected_qty, legs_verdict
from trading.options.trade_models import OptionLeg

LEGS = [
    OptionLeg(symbol="SPY240419P00480000", side=OrderSide.BUY),
    OptionLeg(symbol="SPY240419P00485000", side=OrderSide.SELL),
    OptionLeg(symbol="SPY240419C00540000", side=OrderSide.SELL),
    OptionLeg(symbol="SPY240419C00545000", side=OrderSide.BUY),
]
OPENED = {
    "SPY240419P00480000": 3,
    "SPY240419P00485000": -3,
    "SPY240419C00540000": -3,
    "SPY240419C00545000": 3,
}


def _held(values: dict[str, int]) -> LegsHeld:
    return LegsHeld(held={k: Decimal(v) for k, v in values.items()})


def test_every_leg_at_its_opening_size_is_held() -> None:
    check = legs_verdict(LEGS, 3, _held(OPENED))
    assert check.verdict is LegsVerdict.HELD
    assert "SPY240419P00485000 held -3 expected -3" in check.detail


def test_no_leg_held_is_gone_and_a_missing_symbol_counts_as_zero() -> None:
    assert legs_verdict(LEGS, 3, _held({})).verdict is LegsVerdict.GONE
    zeros = {symbol: 0 for symbol in OPENED}
    assert legs_verdict(LEGS, 3, _held(zeros)).verdict is LegsVerdict.GONE


def test_one_leg_closed_elsewhere_is_a_mismatch_with_its_numbers() -> None:
    held = {**OPENED, "SPY240419C00540000": 0}
    check = legs_verdict(LEGS, 3, _held(held))
    assert check.verdict is LegsVerdict.MISMATCH
    assert "SPY240419C00540000 held 0 expected -3" in check.detail


def test_a_ratio_leg_expects_ratio_times_qty() -> None:
    leg = OptionLeg(symbol="SPY240419C00545000", side=OrderSide.BUY, ratio_qty=2)
    assert expected_qty(leg, 3) == Decimal(6)
    assert expected_qty(LEGS[1], 2) == Decimal(-2)


@given(
    qty=st.integers(min_value=1, max_value=20),
    changes=st.lists(st.integers(min_value=-30, max_value=30), min_size=4, max_size=4),
)
def test_held_only_when_every_leg_is_exact(qty: int, changes: list[int]) -> None:
    held = {
        leg.symbol: int(expected_qty(leg, qty)) + d for leg, d in zip(LEGS, changes, strict=True)
    }
    verdict = legs_verdict(LEGS, qty, _held(held)).verdict
    if all(d == 0 for d in changes):
        assert verdict is LegsVerdict.HELD
    elif all(v == 0 for v in held.values()):
        assert verdict is LegsVerdict.GONE
    else:
        assert verdict is LegsVerdict.MISMATCH
