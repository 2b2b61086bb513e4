"""The strategy protocol, its candidates, the signal key and the registry (pure)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from typing import Protocol, runtime_checkable

from pydantic import Field

from trading.broker_models import Bar, OrderSide
from trading.models import Frozen, JsonScalar


class UnknownStrategy(LookupError):
    """The market loop named a strategy no registry holds."""


class SignalCandidate(Frozen):
    """A strategy's proposal: trade `symbol` on `side`, with features the scorer reads."""

    symbol: str = Field(min_length=1)
    side: OrderSide = OrderSide.BUY
    features: dict[str, JsonScalar] = Field(default_factory=dict)


@runtime_checkable
class Strategy(Protocol):
    """Proposes candidates from daily bars (oldest first per symbol), deterministically."""

    @property
    def name(self) -> str:
        """The name the market loop uses to pick this strategy (also the signal's strategy)."""
        ...

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


class StrategyRegistry:
    """Strategies by name; the market loop names the one it wants."""

    def __init__(self, strategies: Iterable[Strategy] = ()) -> None:
        self._strategies: dict[str, Strategy] = {}
        for strategy in strategies:
            self.register(strategy)

    def register(self, strategy: Strategy) -> None:
        """Add a strategy; a second one with the same name is a mistake."""
        if strategy.name in self._strategies:
            raise ValueError(f"a strategy named {strategy.name!r} is already registered")
        self._strategies[strategy.name] = strategy

    def get(self, name: str) -> Strategy:
        """The strategy with this name; raise UnknownStrategy naming the ones there are."""
        try:
            return self._strategies[name]
        except KeyError:
            raise UnknownStrategy(
                f"no strategy named {name!r}; registered: {', '.join(self.names()) or 'none'}"
            ) from None

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._strategies)
