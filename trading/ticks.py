"""Tick normalisation and price/quantity validation, before any price leaves the process.

US equities: $0.01 ticks at or above $1.00, $0.0001 below. A protective stop rounds away
from the market (down for a long's sell stop, up for a short's buy stop), never toward it.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal
from enum import StrEnum

from trading.errors import TradingInputError

PENNY = Decimal("0.01")
SUB_PENNY = Decimal("0.0001")
ONE_DOLLAR = Decimal(1)


class Rounding(StrEnum):
    """Which way an off-tick price moves."""

    NEAREST = "nearest"
    DOWN = "down"
    UP = "up"


_MODES = {Rounding.NEAREST: ROUND_HALF_UP, Rounding.DOWN: ROUND_FLOOR, Rounding.UP: ROUND_CEILING}


def tick_size(price: Decimal) -> Decimal:
    """The minimum increment for a price."""
    return PENNY if price >= ONE_DOLLAR else SUB_PENNY


def normalize_price(price: Decimal, rounding: Rounding = Rounding.NEAREST) -> Decimal:
    """Round a positive price onto the tick grid."""
    if not price.is_finite() or price <= 0:
        raise TradingInputError(f"price must be a positive number, got {price}")
    rounded = price.quantize(tick_size(price), rounding=_MODES[rounding])
    # Crossing $1.00 changes the tick: re-round on the coarser grid if we landed at/above it.
    if rounded >= ONE_DOLLAR and rounded.as_tuple().exponent != PENNY.as_tuple().exponent:
        rounded = rounded.quantize(PENNY, rounding=_MODES[rounding])
    if rounded <= 0:
        rounded = SUB_PENNY
    return rounded


def is_on_tick(price: Decimal) -> bool:
    """True if the price needs no rounding."""
    return price == price.quantize(tick_size(price))


def protective_stop_price(raw: Decimal, long: bool = True) -> Decimal:
    """A stop price on the tick grid, rounded away from the market."""
    return normalize_price(raw, Rounding.DOWN if long else Rounding.UP)


def take_profit_price(raw: Decimal, long: bool = True) -> Decimal:
    """A take-profit price on the tick grid, rounded away from the market (never easier to hit)."""
    return normalize_price(raw, Rounding.UP if long else Rounding.DOWN)


def validate_quantity(qty: Decimal, fractional_allowed: bool = False) -> Decimal:
    """A positive quantity; whole shares unless fractional trading is allowed."""
    if not qty.is_finite() or qty <= 0:
        raise TradingInputError(f"quantity must be positive, got {qty}")
    if not fractional_allowed and qty != qty.to_integral_value():
        raise TradingInputError(
            f"quantity must be whole shares, got {qty} (fractional orders are market/day only)"
        )
    return qty


def validate_long_exits(market: Decimal, stop: Decimal | None, take_profit: Decimal | None) -> None:
    """A long's stop must sit below the market and its take-profit above, at least a tick."""
    if stop is not None and stop > market - tick_size(market):
        raise TradingInputError(
            f"stop {stop} must be below the market price {market} for a long position"
        )
    if take_profit is not None and take_profit < market + tick_size(market):
        raise TradingInputError(
            f"take-profit {take_profit} must be above the market price {market} for a long"
        )
    if stop is not None and take_profit is not None and stop >= take_profit:
        raise TradingInputError(f"stop {stop} must be below take-profit {take_profit}")
