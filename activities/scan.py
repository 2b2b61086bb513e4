"""ScanActivities: the market loop's scan, next to the bars it reads.

Bars of a whole watchlist are too big to pass through a workflow (Temporal refuses payloads
over 2 MB; 50 symbols of minute bars come close), so the scan runs here: read one timeframe's
bars through the broker activities (metered, errors translated as for every broker read), run
the same pure strategies the backtest runs, and hand the workflow only the signals. Writing
them is one ledger call (`LedgerActivities.insert_signals`).
"""

from __future__ import annotations

from temporalio import activity

from activities.broker import BrokerActivities
from trading.broker_models import BarsRequest
from trading.exits import bars_by_symbol
from trading.market_scan import ScanRequest, ScanResult, signal_for
from trading.strategies import builtin_strategies


class ScanActivities:
    """Scan the watchlist's bars of one timeframe with the strategies that read it."""

    def __init__(self, broker: BrokerActivities) -> None:
        self._broker = broker

    @activity.defn
    def scan_watchlist(self, request: ScanRequest) -> ScanResult:
        """Bars of `request.timeframe` for the watchlist, through each strategy; the signals."""
        registry = builtin_strategies(request.strategy_configs)
        strategies = [registry.get(name) for name in request.strategies]
        bars = self._broker.get_bars(
            BarsRequest(
                symbols=request.symbols,
                timeframe=request.timeframe,
                start=request.start,
                end=request.now,
            )
        )
        by_symbol = bars_by_symbol(bars)
        signals = [
            signal_for(strategy, candidate, by_symbol.get(candidate.symbol, []), request.now)
            for strategy in strategies
            for candidate in strategy.scan(by_symbol, request.now)
        ]
        return ScanResult(signals=signals, bars_read=len(bars))
