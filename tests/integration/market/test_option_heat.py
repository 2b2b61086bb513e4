"""The market loop's heat counts open option trades: an iron condor whose max loss fills the
heat cap leaves no room for a stock entry, which is skipped with heat_cap.

The broker replays test_ranked_entries.py's ORB breakouts (SPY and QQQ at 10:25 New York);
there, with the book empty, the first breakout is entered. Here an OPEN option trade in the
ledger holds the whole $200 cap, so neither breakout is entered.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal

import asyncpg
import pytest

from tests.integration.market.conftest import MarketHarness
from tests.integration.market.test_ranked_entries import RISK, paper_broker

pytestmark = pytest.mark.integration

__all__ = ["paper_broker"]  # this module's broker: the ORB breakouts' CSV replay

HEAT_CAP = RISK.max_heat_pct * Decimal(100_000)  # $200


async def _open_condor(pool: asyncpg.Pool, trade_id: str, max_loss: Decimal) -> None:
    """An OPEN iron condor row, as OptionTradeWorkflow writes it once its entry fills."""
    legs = [
        {"symbol": "SPY240419P00090000", "side": "buy", "ratio_qty": 1},
        {"symbol": "SPY240419P00095000", "side": "sell", "ratio_qty": 1},
        {"symbol": "SPY240419C00105000", "side": "sell", "ratio_qty": 1},
        {"symbol": "SPY240419C00110000", "side": "buy", "ratio_qty": 1},
    ]
    at = datetime(2024, 3, 5, 15, 0, tzinfo=UTC)
    await pool.execute(
        """
        INSERT INTO option_trades (id, underlying, status, status_rank, expiry, qty, legs, width,
                                   credit, max_loss, workflow_id, opened_at, status_at)
        VALUES ($1, 'SPY', 'OPEN', 1, $2, 1, $3::jsonb, 5, $4, $5, $6, $7, $7)
        """,
        trade_id,
        date(2024, 4, 19),
        json.dumps(legs),
        (Decimal(500) - max_loss) / 100,
        max_loss,
        f"option-trade-{trade_id}",
        at,
    )


async def test_an_open_condor_filling_the_heat_cap_leaves_no_room_for_an_entry(
    market: MarketHarness,
) -> None:
    await _open_condor(market.pool, "ic-heat", HEAT_CAP)
    result = await market.run_loop(
        watchlist=["SPY", "QQQ"],
        strategies=["orb"],
        risk=RISK,
        score_threshold=Decimal(-1),
        reconcile=False,
    )
    assert result.signals_by_strategy == {"orb": 2}, result
    decisions = [o.decision for o in result.decisions]
    assert [d.enter for d in decisions] == [False, False], decisions
    assert {d.reason for d in decisions} == {"heat_cap"}, decisions
    # The condor's max loss is the heat the entry saw: $200 of a $200 cap.
    assert all(d.detail.startswith("heat=200.00 new=") for d in decisions), decisions
    assert all("cap=200.00" in d.detail for d in decisions), decisions
    assert await market.count("trades") == 0
    skipped = await market.pool.fetch("SELECT decision, decision_reason FROM signals")
    assert {(r["decision"], r["decision_reason"]) for r in skipped} == {("skipped", "heat_cap")}


async def test_a_closed_condor_takes_no_heat(market: MarketHarness) -> None:
    await _open_condor(market.pool, "ic-closed", HEAT_CAP)
    await market.pool.execute(
        "UPDATE option_trades SET status = 'CLOSED', status_rank = 3, closed_at = status_at "
        "WHERE id = 'ic-closed'"
    )
    result = await market.run_loop(
        watchlist=["SPY", "QQQ"],
        strategies=["orb"],
        risk=RISK,
        score_threshold=Decimal(-1),
        reconcile=False,
    )
    first = result.decisions[0].decision
    assert first.enter, first
