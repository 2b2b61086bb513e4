"""Decimal helpers: tick rounding, sub-penny checks and Alpaca-style number strings."""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal

CENT = Decimal("0.01")
SUB_DOLLAR_TICK = Decimal("0.0001")
ONE = Decimal(1)


def tick_for(price: Decimal) -> Decimal:
    """Return the minimum price increment for `price` (Reg NMS 612)."""
    return CENT if price >= ONE else SUB_DOLLAR_TICK


def round_price(price: Decimal, mode: str = ROUND_HALF_UP) -> Decimal:
    """Round `price` to its tick."""
    return price.quantize(tick_for(price), rounding=mode)


def floor_price(price: Decimal) -> Decimal:
    """Round `price` down to its tick."""
    return round_price(price, ROUND_FLOOR)


def ceil_price(price: Decimal) -> Decimal:
    """Round `price` up to its tick."""
    return round_price(price, ROUND_CEILING)


def is_sub_penny(price: Decimal) -> bool:
    """Return True when `price` has more decimals than its tick allows."""
    return price != price.quantize(tick_for(price))


def fmt(value: Decimal) -> str:
    """Format a Decimal the way Alpaca does: plain digits, no exponent, no trailing zeros."""
    if value == 0:
        return "0"
    text = format(value.normalize(), "f")
    return text


def fmt_money(value: Decimal) -> str:
    """Format an account amount with at most 2 decimals (more for sub-dollar precision)."""
    return fmt(value.quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP))


def to_decimal(value: float | int | str | Decimal) -> Decimal:
    """Convert a JSON number or string to Decimal without binary float noise."""
    if isinstance(value, Decimal):
        return value
    if isinstance(value, float):
        return Decimal(repr(value))
    return Decimal(str(value))
