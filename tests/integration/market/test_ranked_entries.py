"""The market loop's brain end to end: an ORB breakout in the broker's own bars is scanned,
scored, ranked and sized by the risk engine; the heat cap refuses the second breakout; an
approved add-on buys into the trade as one OTO and the stop is resized to the whole position.

The paper broker replays a CSV written here: on Tuesday 5 March 2024 (New York, EST) SPY
ranges 100.00-101.00 and QQQ 200.00-202.00 from 09:30 to 09:45, stay inside until 10:25,
then break out on five times the volume (SPY closes 101.50, QQQ 203.00) and stay there.
SPY and QQQ, because the harness flattens its own symbols' paths. The test reads the range
back from the broker's bars (a replayed bar keeps its open and close). The tests run at 10:30
New York (the suite's SESSION_START), inside ORB's 10-minute window.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import ROUND_FLOOR, Decimal
from pathlib import Path

import pytest

from ledger.signals import Signals
from paperbroker.testing import RunningBroker, run_paper_broker
from tests.conftest import SESSION_START
from tests.integration.market.conftest import MarketHarness
from tests.integration.trade.conftest import HISTORIES
from tests.integration.trade.test_add_on import all_orders
from trading.broker_models import OrderType
from trading.ledger_records import SignalCreate, SignalScored, TradeStatus
from trading.risk import RiskLimits
from trading.ticks import protective_stop_price

pytestmark = pytest.mark.integration

OPEN = datetime(2024, 3, 5, 14, 30, tzinfo=UTC)  # 09:30 New York
BREAKOUT = datetime(2024, 3, 5, 15, 25, tzinfo=UTC)  # 10:25 New York
CLOSE = datetime(2024, 3, 5, 21, 0, tzinfo=UTC)
# (range low, range high, inside low, inside high, breakout close)
SETUPS = {
    "SPY": (Decimal("100.00"), Decimal("101.00"), Decimal("100.20"), Decimal("100.80"), "101.50"),
    "QQQ": (Decimal("200.00"), Decimal("202.00"), Decimal("200.40"), Decimal("201.60"), "203.00"),
}
# $150 at the stop per trade; the heat cap (0.2 % of $100,000 = $200) takes one such trade.
RISK = RiskLimits(
    risk_per_trade_usd=Decimal(150),
    max_heat_pct=Decimal("0.002"),
    max_allocation_pct=Decimal("0.5"),
    daily_loss_limit_pct=None,
)


def _rows(symbol: str) -> Iterator[dict[str, str]]:
    """Minute bars whose opens and closes carry the shape (the broker's replay keeps a bar's
    open and close; what happens inside a minute is not replayed)."""
    low, high, inside_low, inside_high, breakout = SETUPS[symbol]
    at, last = OPEN, (low + high) / 2
    while at < CLOSE:
        minute = int((at - OPEN).total_seconds() // 60)
        volume = 1000 + minute % 3
        if at < OPEN + timedelta(minutes=15):  # the opening range: closes touch both ends
            close = high if minute % 2 == 0 else low
        elif at < BREAKOUT:
            close = inside_high if minute % 2 == 0 else inside_low
        elif at == BREAKOUT:
            close, volume = Decimal(breakout), 5000
        else:
            close = Decimal(breakout)
        yield {
            "symbol": symbol,
            "timestamp": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "open": str(last),
            "high": str(max(last, close)),
            "low": str(min(last, close)),
            "close": str(close),
            "volume": str(volume),
        }
        at, last = at + timedelta(minutes=1), close


@pytest.fixture(scope="module")
def paper_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningBroker]:
    """This module's broker replays the breakout CSV (manual clock at SESSION_START)."""
    path: Path = tmp_path_factory.mktemp("orb") / "orb_breakouts.csv"
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(
            handle, fieldnames=["symbol", "timestamp", "open", "high", "low", "close", "volume"]
        )
        writer.writeheader()
        for symbol in SETUPS:
            writer.writerows(_rows(symbol))
    with run_paper_broker(start=SESSION_START, rate_limit=0, replay_csv=path) as running:
        yield running


async def _range_low(market: MarketHarness, symbol: str) -> Decimal:
    end = OPEN + timedelta(minutes=15)
    found = market.gateway.get_bars([symbol], "1Min", OPEN.isoformat(), end.isoformat(), None)
    bars = [b for b in found if b.timestamp < end]
    assert len(bars) == 15
    return min(b.low for b in bars)


async def test_an_orb_breakout_is_entered_at_the_risk_engines_size_and_heat_refuses_the_next(
    market: MarketHarness,
) -> None:
    result = await market.run_loop(
        watchlist=["SPY", "QQQ"],
        strategies=["orb"],
        risk=RISK,
        score_threshold=Decimal(-1),
        reconcile=False,
    )
    assert result.signals_by_strategy == {"orb": 2}, result
    assert [o.decision.rank for o in result.decisions] == [1, 2]
    first, second = result.decisions
    entered = first.decision
    assert entered.enter and not entered.add_on, first
    assert entered.entry_price is not None and entered.stop_price is not None
    # The ORB stop is the range low (on the tick grid); the size is floor($150 / (ask - stop)).
    assert entered.stop_price == protective_stop_price(await _range_low(market, first.symbol))
    per_share = entered.entry_price - entered.stop_price
    assert entered.qty == (Decimal(150) / per_share).to_integral_value(rounding=ROUND_FLOOR)
    assert entered.target_price is not None and entered.target_price > entered.entry_price
    # The second breakout would double the open risk past the $200 cap.
    assert not second.decision.enter
    assert second.decision.reason == "heat_cap", second.decision
    assert "cap=200.00" in second.decision.detail, second.decision.detail

    view = await market.wait_for(
        first.trade_id or "",
        lambda v: v.status is TradeStatus.OPEN and v.state.stop_order_id is not None,
    )
    stop = market.gateway.get_order(view.state.stop_order_id or "")
    assert stop.qty == entered.qty and stop.stop_price == entered.stop_price

    # Each signal's path is in the ledger: rank, verdict, decision, trade.
    rows = {
        r["symbol"]: dict(r)
        for r in await market.pool.fetch(
            "SELECT symbol, strategy, status, rank, decision, decision_reason, trade_id "
            "FROM signals"
        )
    }
    assert rows[first.symbol] | {"status": "SCORED"} == {
        "symbol": first.symbol,
        "strategy": "orb",
        "status": "SCORED",
        "rank": 1,
        "decision": "entered",
        "decision_reason": "entered",
        "trade_id": first.trade_id,
    }
    assert (rows[second.symbol]["decision"], rows[second.symbol]["decision_reason"]) == (
        "skipped",
        "heat_cap",
    )
    if os.environ.get("SAVE_MARKET_LOOP_HISTORY"):  # re-record the replay test's history
        handle = market.client.get_workflow_handle(result.run_id.split(":")[0])
        history = await handle.fetch_history()
        (HISTORIES / "market_loop_orb_entry_and_heat_cap.json").write_text(history.to_json())


async def test_an_approved_add_on_buys_one_oto_and_one_stop_covers_the_whole_position(
    market: MarketHarness, paper_broker: RunningBroker
) -> None:
    result = await market.run_loop(
        watchlist=["SPY"],
        strategies=["orb"],
        risk=RISK,
        score_threshold=Decimal(-1),
        reconcile=False,
    )
    (outcome,) = result.decisions
    assert outcome.decision.enter and outcome.trade_id is not None
    first_qty = outcome.decision.qty or Decimal(0)
    await market.wait_for(
        outcome.trade_id,
        lambda v: v.status is TradeStatus.OPEN and v.state.stop_order_id is not None,
    )

    # A confident second signal for the symbol our trade holds: an add-on, not a new trade.
    signals = Signals(market.pool)
    key = "manual:SPY:add-on"
    await signals.insert(
        SignalCreate(signal_key=key, symbol="SPY", strategy="manual", features={"confidence": 5})
    )
    await signals.mark_scored(
        SignalScored(signal_key=key, score=Decimal("0.9"), confidence=Decimal("0.9"))
    )
    limits = RISK.model_copy(update={"addons_enabled": True, "max_heat_pct": Decimal("0.5")})
    added = await market.run_loop(risk=limits, score_threshold=Decimal(-1), reconcile=False)
    (add,) = added.decisions
    assert add.decision.enter and add.decision.add_on, add.decision
    assert add.trade_id == outcome.trade_id
    add_qty = add.decision.qty or Decimal(0)
    assert add_qty >= 1

    # One trade; one OTO add-on order at the broker; one stop over the whole position.
    assert [t.id for t in await market.open_trades()] == [outcome.trade_id]
    buys = [o for o in all_orders(paper_broker) if o.symbol == "SPY" and o.side.value == "buy"]
    otos = [o for o in buys if o.order_class is not None and o.order_class.value == "oto"]
    assert len(buys) == 2 and len(otos) == 1, buys
    assert Decimal(str(otos[0].qty)) == add_qty
    view = await market.wait_for(
        outcome.trade_id,
        lambda v: (
            v.state.stop_order_id is not None
            and market.gateway.get_order(v.state.stop_order_id).qty == first_qty + add_qty
        ),
        within=30.0,
    )
    probe = market.gateway.probe_position("SPY")
    assert probe.position is not None and probe.position.qty == first_qty + add_qty
    active_stops = [
        o
        for order in market.gateway.get_open_orders()
        for o in (order, *order.legs)
        if o.symbol == "SPY" and o.type is OrderType.STOP and o.is_active
    ]
    assert [s.id for s in active_stops] == [view.state.stop_order_id]
    row = await market.pool.fetchrow(
        "SELECT decision, trade_id FROM signals WHERE signal_key = $1", key
    )
    assert row is not None and (row["decision"], row["trade_id"]) == ("added", outcome.trade_id)
