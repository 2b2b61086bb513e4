"""The strategy protocol, its candidates, the signal key and the registry (pure)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Protocol, runtime_checkable

from pydantic import Field

from trading.broker_models import Bar, OrderSide
from trading.models import Frozen, JsonScalar
from trading.registry import Named, NamedRegistry


class UnknownStrategy(LookupError):
    """The market loop named a strategy no registry holds."""


class SignalCandidate(Frozen):
    """A strategy's proposal: trade `symbol` on `side`, with features the scorer reads."""

    symbol: str = Field(min_length=1)
    side: OrderSide = OrderSide.BUY
    features: dict[str, JsonScalar] = Field(default_factory=dict)


@runtime_checkable
class Strategy(Named, Protocol):
    """Proposes candidates from daily bars (oldest first per symbol), deterministically.

    The market loop picks it by name, which is also the strategy its signals record.
    """

    @property
    def lookback_bars(self) -> int:
        """How many daily bars per symbol the scan needs at most."""
        ...

    def scan(
        self, bars_by_symbol: Mapping[str, Sequence[Bar]], now: datetime
    ) -> list[SignalCandidate]:
        """Candidates for the symbols whose bars qualify, in symbol order."""
        ...


def signal_key(strategy: str, symbol: str, session_date: date) -> str:
    """One signal per strategy, symbol and session: `momentum:AAPL:2024-03-05`."""
    return f"{strategy}:{symbol}:{session_date.isoformat()}"


class StrategyRegistry(NamedRegistry[Strategy]):
    """Strategies by name; the market loop names the one it wants."""

    kind = "strategy"
    unknown = UnknownStrategy
