"""paperbroker/models.py after_fill: one rule for how a fill moves a stock or option position."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from paperbroker.models import after_fill

D = Decimal


@pytest.mark.parametrize(
    ("qty", "avg", "signed", "price", "expected"),
    [
        (D(0), D(0), D(10), D(100), (D(10), D(100))),  # opened from flat
        (D(10), D(100), D(10), D(110), (D(20), D(105))),  # added to: averaged
        (D(-2), D("1.50"), D(-1), D("1.20"), (D(-3), D("1.4000"))),  # a short added to
        (D(10), D(100), D(-4), D(120), (D(6), D(100))),  # reduced: the entry price stays
        (D(10), D(100), D(-10), D(120), (D(0), D(100))),  # closed: gone
        (D(10), D(100), D(-15), D(120), (D(-5), D(120))),  # crossed: the new side at the fill
        (D(1), D(3), D(2), D(4), (D(3), D("3.6667"))),  # the average to 4 places
    ],
)
def test_a_fill_moves_the_position(
    qty: Decimal, avg: Decimal, signed: Decimal, price: Decimal, expected: tuple[Decimal, Decimal]
) -> None:
    assert after_fill(qty, avg, signed, price) == expected


amounts = st.integers(min_value=-500, max_value=500).map(Decimal)
prices = st.integers(min_value=1, max_value=100_000).map(lambda cents: Decimal(cents) / 100)


@given(qty=amounts, avg=prices, signed=amounts.filter(bool), price=prices)
def test_the_quantity_always_moves_by_the_fill_and_a_price_stays_within_what_was_paid(
    qty: Decimal, avg: Decimal, signed: Decimal, price: Decimal
) -> None:
    new_qty, new_avg = after_fill(qty, avg, signed, price)
    assert new_qty == qty + signed
    if new_qty != 0:
        low, high = (min(avg, price), max(avg, price)) if qty else (price, price)
        assert low - D("0.0001") <= new_avg <= high + D("0.0001")
