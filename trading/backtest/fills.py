"""The backtest's fill model: where an entry fills and when and where a protective exit fills.

- Entry: a signal dated `at` (its trigger bar's close) fills at the open of the symbol's next
  bar (the first bar starting at or after `at`), plus slippage: open * (1 + bps / 10,000).
- Exits, checked on every bar from the entry bar on (the entry fills at the open, the bar's
  range comes after it):
  - the open at or below the stop (a gap through it): the stop fills at the open, minus
    slippage;
  - the open at or above the target (a gap over it): the take-profit fills at the open;
  - the bar's low at or below the stop (and its high at or above the target too: one bar
    touching both is assumed to have hit the stop first, the conservative reading): the stop
    fills at the stop, minus slippage;
  - the bar's high at or above the target: it fills at the target.
  The stop is a stop-market order (slippage applies); the take-profit is a limit order, which
  fills at its price or better (no slippage).
- A position still open after the last bar is closed at that bar's close, minus slippage.

Prices are kept to 4 decimal places (half-even).
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal

from trading.backtest.models import ExitReason
from trading.broker_models import Bar

PRICE_PLACES = Decimal("0.0001")
_BPS = Decimal(10_000)


def _price(value: Decimal) -> Decimal:
    return value.quantize(PRICE_PLACES, rounding=ROUND_HALF_EVEN)


def buy_fill(price: Decimal, slippage_bps: Decimal) -> Decimal:
    """A buy at `price` after slippage (pays more)."""
    return _price(price * (1 + slippage_bps / _BPS))


def sell_fill(price: Decimal, slippage_bps: Decimal) -> Decimal:
    """A market or stop sell at `price` after slippage (gets less)."""
    return _price(price * (1 - slippage_bps / _BPS))


def exit_on_bar(
    bar: Bar, stop: Decimal, target: Decimal | None, slippage_bps: Decimal
) -> tuple[Decimal, ExitReason] | None:
    """Where a long with this stop and target exits on `bar`, and why; None if it holds."""
    if bar.open <= stop:
        return sell_fill(bar.open, slippage_bps), ExitReason.STOP
    if target is not None and bar.open >= target:
        return _price(bar.open), ExitReason.TARGET
    if bar.low <= stop:
        return sell_fill(stop, slippage_bps), ExitReason.STOP
    if target is not None and bar.high >= target:
        return _price(target), ExitReason.TARGET
    return None
