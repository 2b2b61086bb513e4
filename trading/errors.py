"""Domain errors raised by pure trading logic (bad prices, quantities, ids)."""

from __future__ import annotations


class TradingInputError(ValueError):
    """An order, price or id is invalid before it ever reaches the broker; retrying won't help."""
