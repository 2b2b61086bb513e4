"""Tick normalisation and order-price validation (hypothesis over the edge cases)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trading.errors import TradingInputError
from trading.ticks import (
    Rounding,
    is_on_tick,
    normalize_price,
    protective_stop_price,
    take_profit_price,
    tick_size,
    validate_long_exits,
    validate_quantity,
)

prices = st.decimals(
    min_value=Decimal("0.0001"),
    max_value=Decimal("100000"),
    places=6,
    allow_nan=False,
    allow_infinity=False,
)


@given(prices, st.sampled_from(list(Rounding)))
def test_normalized_prices_are_on_tick_and_stable(price: Decimal, rounding: Rounding) -> None:
    rounded = normalize_price(price, rounding)
    assert is_on_tick(rounded)
    assert normalize_price(rounded, rounding) == rounded
    assert rounded > 0


@given(prices)
def test_rounding_direction_and_distance(price: Decimal) -> None:
    down, up = normalize_price(price, Rounding.DOWN), normalize_price(price, Rounding.UP)
    assert down <= price <= up or price < Decimal("0.0001")
    assert up - down <= tick_size(up)


@given(prices)
def test_protective_stop_never_moves_toward_the_market(price: Decimal) -> None:
    assert protective_stop_price(price, long=True) <= price  # long: sell stop rounds down
    assert protective_stop_price(price, long=False) >= price  # short: buy stop rounds up
    assert take_profit_price(price, long=True) >= price


@pytest.mark.parametrize(
    ("price", "rounding", "expected"),
    [
        ("290.123", Rounding.NEAREST, "290.12"),
        ("290.125", Rounding.NEAREST, "290.13"),
        ("99.999", Rounding.DOWN, "99.99"),
        ("0.12345", Rounding.DOWN, "0.1234"),
        ("0.12345", Rounding.UP, "0.1235"),
        ("0.99995", Rounding.UP, "1.00"),
        ("0.99999", Rounding.DOWN, "0.9999"),
        ("1.005", Rounding.DOWN, "1.00"),
    ],
)
def test_known_values(price: str, rounding: Rounding, expected: str) -> None:
    assert normalize_price(Decimal(price), rounding) == Decimal(expected)


@pytest.mark.parametrize("bad", ["0", "-1", "NaN", "Infinity"])
def test_non_positive_prices_are_refused(bad: str) -> None:
    with pytest.raises(TradingInputError, match="positive"):
        normalize_price(Decimal(bad))


def test_quantities() -> None:
    assert validate_quantity(Decimal(10)) == Decimal(10)
    with pytest.raises(TradingInputError, match="whole shares"):
        validate_quantity(Decimal("1.5"))
    assert validate_quantity(Decimal("1.5"), fractional_allowed=True) == Decimal("1.5")
    with pytest.raises(TradingInputError, match="positive"):
        validate_quantity(Decimal(0))


def test_long_exit_validation_names_the_problem() -> None:
    validate_long_exits(Decimal(100), Decimal(95), Decimal(110))
    with pytest.raises(TradingInputError, match=r"stop 101 must be below the market price 100"):
        validate_long_exits(Decimal(100), Decimal(101), None)
    with pytest.raises(TradingInputError, match="take-profit 99 must be above"):
        validate_long_exits(Decimal(100), None, Decimal(99))
